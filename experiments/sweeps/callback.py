"""Multirun support: one MLflow parent run per sweep, and its summary at the end.

The :class:`SweepCallback` (configured under ``hydra.callbacks``) runs in the
process that launches the jobs:

* ``on_multirun_start`` starts warming a joblib sweep's workers
  (:mod:`experiments.launching.warm`) or a layerlab sweep's (:mod:`experiments.launching.pool`:
  kept for all its batches, stopped when it ends), then creates the tracking store and the experiment *once*
  (several workers migrating a fresh SQLite store at once corrupt it) and
  opens the parent run, tagged with the sweep folder; every job finds it by a
  tag query on that folder (:func:`experiments.tracking.store.find_parent`),
  which works the same under every launcher;
* the end of the sweep (``on_multirun_end``, or :func:`finalize_active` from
  ``runner.py`` when Hydra skips that hook because a job failed) lists every
  job with its status, runs the statistical comparison, logs both to the
  parent run and closes it FINISHED, FAILED or KILLED
  (:mod:`experiments.sweeps.finalize`);
* in between, the sweep's progress display (:mod:`experiments.sweeps.progress.display`)
  reads the status file each job writes into the sweep folder: ``on_job_start``
  and ``on_job_end`` run in the job's own process (a launcher's worker or this
  one) and write its start and its outcome, a Keras callback its epochs.

MLflow and the summary are imported when first used, not with this module:
Hydra imports it at start-up, and the parent's own imports then overlap the
workers' warm-up instead of delaying it.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any

from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.adapters.hydra_internals import job_error, use_project_sweeper
from experiments.config.multirun import multirun_config
from experiments.errors import LayerlabError, TrackingError
from experiments.job import background_close
from experiments.job.context import hydra_context
from experiments.launching.ledger import completing_command, reusable_hydra_overrides, sweep_hydra_overrides
from experiments.launching.pool import warm_pool
from experiments.launching.warm import release_joblib_workers, warm_workers
from experiments.process import debug_enabled, quiet_launch_lines
from experiments.sweeps.context import current_sweep
from experiments.sweeps.state import SweepState
from experiments.sweeps.ui import compare_options
from experiments.tracking import tags
from experiments.tracking.auth import access_errors
from experiments.tracking.experiment import open_experiment
from experiments.tracking.heartbeat import Heartbeat
from experiments.tracking.redaction import tags_json
from experiments.tracking.store import git_state
from experiments.training.progress_file import RUNNING, write_status

log = logging.getLogger(__name__)


class SweepCallback(Callback):
    """Hydra callback that groups a multirun under one MLflow parent run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        use_project_sweeper(config)  # the basic sweeper becomes hydra/sweeper=layerlab (fused replicates, rounds)
        context = current_sweep()
        quiet_launch_lines()  # the progress display names each job instead
        try:
            settings = multirun_config(config)
            context.begin(settings.launcher)
            if not settings.dry_run:  # before any worker starts: on a terminal, their output goes above the display
                context.progress = start_progress(settings)
            warm = warm_workers(settings.launcher)
            context.workers = warm_pool(settings.launcher, settings.planned_jobs)
            context.activate(start_sweep(settings))
        except Exception as exc:
            # Hydra would turn an exception here into a warning and run every job anyway, without the parent
            # run: each job's run would be a top-level orphan. The sweep stops before its first job instead.
            context.stop_progress()
            error = exc if isinstance(exc, LayerlabError) else parent_not_opened(exc)
            if debug_enabled():
                traceback.print_exc()
            print(f"layerlab: error: {error}", flush=True)
            raise SystemExit(error.exit_code) from None
        if (warm is not None or context.workers is not None) and not settings.dry_run:
            import_summary_modules()  # the parent would only wait for its workers' imports here
        if warm is not None:
            warm.wait()  # the launcher's own Parallel call then reuses the warm workers

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        finalize_active(interrupted=False)

    # In the job's own process (a launcher's worker, or this one): what the sweep's display reads.
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        job = hydra_context()
        if job.progress_path is not None:
            write_status(job.progress_path, fresh=True, job=job.job_num, overrides=list(job.overrides), status=RUNNING)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        job = hydra_context()
        if job.progress_path is None or job_return is None:
            return
        if job_return.status == JobStatus.COMPLETED:
            write_status(job.progress_path, status=str(job_return.return_value or "COMPLETED"))
        else:
            error = str(job_error(job_return) or "").strip().splitlines()
            write_status(job.progress_path, status="FAILED", error=error[0] if error else "")


def parent_not_opened(exc: Exception) -> TrackingError:
    """An unexpected failure while the sweep opened its store and parent run, as one paragraph."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return TrackingError(
        f"the sweep could not open its MLflow parent run ({type(exc).__name__}: {first}), so no job was started",
        path="tracking.uri",
        fix="check the store with `python -m experiments.doctor --dry-run` (same tracking.uri), "
        "then run the sweep again; LAYERLAB_DEBUG=1 shows the traceback",
    )


def start_progress(settings):
    """The sweep's live display (plain lines where stdout is not a terminal), started."""
    from experiments.sweeps.progress.display import SweepProgress

    return SweepProgress(
        settings.sweep_dir, settings.task_overrides, settings.sweep.replicate_key, settings.planned_jobs
    ).start()


def import_summary_modules() -> None:
    """In the parent, while it waits for the warm-up: what the sweep's final comparison imports (SciPy, ...).

    Done in the parent rather than in a thread during the jobs: a thread importing
    modules holds the GIL while the launcher pickles and dispatches the
    first jobs (it delayed them; BENCHMARKS.md, section 2b).
    """
    import experiments.analysis.compare  # imported by the summary when it compares
    import experiments.sweeps.finalize  # noqa: F401


def _epochs_target(value, metric) -> float | None:
    """``sweep.target_accuracy``, or the metric's default (none for a lower-is-better metric) when it is null."""
    return float(value) if value is not None else metric.default_target


def start_sweep(settings) -> SweepState:
    """Create the store and experiment once, and open the sweep's parent run (none for a dry run).

    Args:
        settings: the sweep's :class:`~experiments.config.multirun.MultirunConfig`.
    """
    sweep_dir, metric, tracking = settings.sweep_dir, settings.metric, settings.tracking
    if settings.dry_run:
        print("layerlab: dry run of a sweep: every job is composed, validated and built; nothing is logged", flush=True)
        return SweepState(
            uri="",
            experiment="",
            experiment_id="",
            parent_run_id=None,
            sweep_id="dry-run",
            sweep_dir=sweep_dir,
            metric=metric,
            compare=False,
            dry_run=True,
        )
    experiment = open_experiment(tracking)  # also closes runs of earlier runs/sweeps whose process died: FAILED
    uri, exp_id = experiment.uri, experiment.id
    sweep_id = f"{sweep_dir.name.replace(':', '-')}-{uuid.uuid4().hex[:6]}"
    # From the composed config: a launcher whose jobs run elsewhere (joblib) never sets Hydra's state here.
    hydra_overrides = sweep_hydra_overrides(sweep_dir, reusable_hydra_overrides(settings.hydra_overrides))
    import mlflow

    parent_tags = {
        tags.ROLE: tags.ROLE_PARENT,
        tags.SWEEP_ID: sweep_id,
        tags.SWEEP_DIR: str(sweep_dir.resolve()),
        tags.SWEEP_DIR_RAW: str(sweep_dir),  # what each job sees as its hydra.sweep.dir
        tags.OVERRIDES: tags_json(list(settings.task_overrides)),
        tags.METRIC: metric.name,
        tags.METRIC_MODE: metric.mode,
        # What the doctor puts in the parent's error if this process dies (SIGKILL, power loss).
        tags.COMPLETING_COMMAND: completing_command(list(settings.task_overrides), hydra_overrides),
        **git_state(),
    }
    with access_errors(uri, tracking.experiment, "write to"):  # the sweep's first write: 403 for a read-only user
        parent = mlflow.MlflowClient(uri).create_run(exp_id, run_name=f"sweep {sweep_id}", tags=parent_tags)
    state = SweepState(
        uri=uri,
        experiment=tracking.experiment,
        experiment_id=exp_id,
        parent_run_id=parent.info.run_id,
        sweep_id=sweep_id,
        sweep_dir=sweep_dir,
        metric=metric,
        compare=settings.sweep.compare,
        target=_epochs_target(settings.sweep.target_accuracy, metric),
        compare_options=compare_options(settings.sweep),
        planned_jobs=settings.planned_jobs,
        hydra_overrides=hydra_overrides,
    )
    # The parent beats like a job, from this process: the doctor of a later run closes it if this process dies.
    state.heartbeat = Heartbeat(uri, state.parent_run_id).start()
    threads = settings.launcher.threads_per_job()
    print(
        f"layerlab: sweep {sweep_id}: parent run {state.parent_run_id} in experiment {tracking.experiment!r}"
        + (f", {threads} TF thread(s) per parallel job" if threads else ""),
        flush=True,
    )
    return state


def workers_released() -> bool:
    """True when no launcher worker of this process outlives it: it may then skip the interpreter's teardown.

    No sweep, or one of the basic launcher (its jobs ran in this process and
    closed their runs): nothing to wait for. The joblib and layerlab launchers:
    their idle workers are shut down here first (layerlab's pool already by
    :func:`finalize_active`). Other launchers (Ray, SLURM) shut their workers
    down in the normal exit.
    """
    context = current_sweep()
    if not context.ever_started or context.launcher.kind == "basic":
        return True
    if context.launcher.kind == "joblib":
        try:
            release_joblib_workers()
            return True
        except Exception as exc:  # a worker that will not stop: the normal exit waits for it
            log.debug("joblib workers not released: %r", exc)
            return False
    if context.launcher.kind == "layerlab":
        return context.release_workers()
    return False


def finalize_active(interrupted: bool, failed: bool = False) -> None:
    """Finalise the sweep started in this process, if any and not done yet; its launcher's workers stop."""
    context = current_sweep()
    # Runs a job closes in the background (a batch's end waits for them): here too, should the batch have been
    # left by an exception, so the summary sees them closed and the process's fast exit cuts none short.
    background_close.wait_for_closes()
    for line in background_close.take_failures():
        print(f"layerlab: could not write the outputs of {line}", flush=True)
    context.stop_progress()  # its last lines before the summary's
    context.release_workers(wait=False)  # idle now: they exit while the summary is written
    try:
        _finalize(context.take(), interrupted, failed)
    finally:
        context.release_workers()  # no orphan worker, however the sweep ended


def _finalize(state: SweepState | None, interrupted: bool, failed: bool) -> None:
    if state is None or state.finalized:
        return
    state.finalized = True
    if state.heartbeat is not None:
        state.heartbeat.stop()  # the parent is closed below by this living process
    try:
        from experiments.sweeps.finalize import finalize

        finalize(state, interrupted, failed)
    except Exception as exc:  # never mask the sweep's own outcome
        print(f"layerlab: could not finalise sweep {state.sweep_id}: {type(exc).__name__}: {exc}", flush=True)
        if state.parent_run_id is None:
            return
        try:
            import mlflow

            mlflow.MlflowClient(state.uri).set_terminated(state.parent_run_id, "KILLED" if interrupted else "FAILED")
        except Exception as close_exc:  # the store itself is gone: the doctor closes the parent later
            log.debug("parent run %s not closed: %r", state.parent_run_id, close_exc)
