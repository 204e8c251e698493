"""A fused job: the seeds of one setting trained in ONE fit, each replica still its own MLflow run.

The sweeper gives this job ``sweep.fused_seeds=[0,1,2]`` and
``sweep.fused_jobs=[...]`` (:mod:`experiments.config.fusion`). Every replica
is a :class:`ReplicaRun`: the config, overrides, output folder, job number and
run of the solo job with that seed, and it logs what that job logs (params
with its own seed, per-epoch metrics under the usual names while the fit
runs, test metrics, config files, model summary and picture, dataset inputs,
history, plots, its own model with only its weights, checkpoints), plus the
tag ``layerlab.fused_group``. The training itself is one
:class:`~experiments.training.fused.FusedReplicas` fit.

The runs are created before the fit (the sweep sees them RUNNING, metrics
arrive each epoch); params and artifacts are logged after it, one replica
after the other (MLflow's fluent API has one active run per thread, and
:func:`experiments.job.artifacts.log_outputs` logs through it). In a sweep's
own process the FINISHED replicas are closed that way in a writer thread
while the sweep's next job trains, and their params and model descriptions
are logged by that thread while their own fit runs
(:mod:`experiments.job.background_close`).

Outcomes per replica: a NaN loss ends that replica's run FAILED with the
solo job's message while the others finish (the job then fails, as a sweep
job with a failed run does); Ctrl-C ends every replica's run KILLED with the
command that resumes it, alone, from its own checkpoint (a fused group is not
resumed as a group); any other error ends every replica's run FAILED with it.
"""

from __future__ import annotations

import copy
import functools
import tempfile
import traceback
from pathlib import Path
from typing import Any, cast

import mlflow
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from experiments.adapters.mlflow_internals import active_in_this_thread
from experiments.config.fusion import replica_overrides
from experiments.config.schema import JobConfig, validate
from experiments.errors import ConfigError, LayerlabError
from experiments.job import artifacts, background_close
from experiments.job.context import JobContext
from experiments.job.prepare import prepare, split_datasets
from experiments.job.result import JobResult, finished_metrics
from experiments.job.run_record import RunRecord
from experiments.tracking import tags
from experiments.tracking.channel import RunChannel
from experiments.tracking.experiment import open_experiment
from experiments.tracking.sink import MetricSink
from experiments.tracking.uri import resolve_uri
from experiments.training.callbacks import make_callbacks
from experiments.training.compile import compile_model
from experiments.training.fused import FusedReplicas, ReplicaResult, choose_layout
from experiments.training.runtime import setup_runtime


class ReplicaRun:
    """One replica's MLflow run, as the solo job with its seed would have it (see the module docs)."""

    def __init__(self, cfg: DictConfig, ctx: JobContext, job: JobConfig, group: str, fused_job: int | None = None):
        self.cfg, self.ctx, self.job = cfg, ctx, job
        self.out_dir = Path(ctx.output_dir or tempfile.mkdtemp(prefix="layerlab-")).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        uri = resolve_uri(job.tracking.uri)
        self.channel = RunChannel(uri)  # one device, one process: this process logs every replica
        self.record = RunRecord(cfg, ctx, job, self.out_dir, uri, self.channel)
        self.group, self.fused_job = group, fused_job
        self.first = False  # the replica whose epochs the sweep's progress display shows
        # the fused job's status file (JobContext.progress_path), set on the first
        self.fused_progress: Path | None = None
        self.data: Any = None  # the DataSplits, once prepared
        self.model = None
        self.described = False  # params, config files and model description logged (during the fit, or at close)

    @property
    def run_id(self) -> str | None:
        return self.record.run_id

    def open(self, exp_id: str) -> None:
        """Create the run (name and tags as the solo job's, plus the fused group), its heartbeat and metric sink."""
        extra = {tags.FUSED_GROUP: self.group}  # for a person: "job 2 seeds 0,1,2,3,4"
        if self.fused_job is not None:
            extra[tags.FUSED_JOB] = str(self.fused_job)
        self.record.create(exp_id, extra)

    def callbacks(self) -> list:
        """The solo job's callbacks (NaN guard, checkpoints, early stopping, epoch metrics), for this replica."""
        # The sweep's display follows the fused job through its first replica (all replicas are at the same epoch).
        progress = self.fused_progress if self.first else None
        callbacks = make_callbacks(
            self.job, out_dir=self.out_dir, sink=self.record.on_epoch, run_id=self.run_id, progress=progress
        )
        self.record.checkpointer = next((c for c in callbacks if hasattr(c, "flush")), None)
        return callbacks

    def build(self):
        """The solo job's data and model (called by the engine right after seeding, as the solo job builds)."""
        self.data, self.model = prepare(self.job)
        return self.model

    def datasets(self) -> dict:
        return split_datasets(self.job, self.data)

    def _log_description(self) -> None:
        """Params, config files, and the model's size, summary, picture and inputs, into the active run."""
        artifacts.log_params(self.cfg, self.channel)
        artifacts.log_config_files(self.cfg, self.out_dir, self.channel)
        if self.model is not None:
            self.record.describe(self.model, self.data)
        self.described = True

    def describe_in_background(self) -> None:
        """What needs no training, logged by the writer thread while the fit runs (it reads the model's
        structure only, never its weights); the close then logs the rest."""
        run_id = cast(str, self.run_id)

        def describe():
            with active_in_this_thread(run_id, self.record.uri):
                self._log_description()

        background_close.close_later(background_close.run_label(run_id, self.job.seed), describe)

    def close_as(self, status: str, result: ReplicaResult | None = None, error: str | None = None) -> JobResult:
        """Log what the solo job logs for this outcome into the run, then end it ``status``."""
        record = self.record
        if record.run_id is None:  # its run was never created (the store failed first)
            return JobResult(status=status)
        mlflow.start_run(run_id=record.run_id)  # the active run of the fluent logging below (it stays RUNNING)
        out = JobResult(status=status, run_id=record.run_id)
        try:
            if not self.described:
                self._log_description()
            if result is not None and status == "FINISHED":
                # journaled like the epochs, as the solo job does (the sink starts with the run)
                cast(MetricSink, record.sink)(result.scores, record.epochs_done)
                artifacts.log_outputs(self.job, result.model, self.data, result.history, self.out_dir, self.channel)
                out.metrics = finished_metrics(result.history, result.scores)
            if error:
                record.log_error(error)
        finally:
            record.finish(status)
        return out

    def finished_before(self, exp_id: str) -> bool:
        """``sweep.skip_finished``: this seed's config already has a FINISHED run (then it is left out)."""
        done = self.record.finished_before(exp_id)
        if done:
            print(
                f"layerlab: skipped seed {self.job.seed}, config {self.record.hash} already has FINISHED run {done}",
                flush=True,
            )
        return bool(done)

    def report(self, result: JobResult) -> None:
        """The solo job's last line, for this replica; none in a sweep, as a solo sweep job prints none (the sweep's
        display prints one line per job: experiments.sweeps.progress.display)."""
        if not self.ctx.in_sweep:
            print(self.record.final_line(result, result.experiment_id), flush=True)

    def interrupted(self, exc: BaseException) -> None:
        """Ctrl-C: keep the last completed epoch and end the run KILLED with the command that resumes it alone."""
        self.close_as("KILLED", error=self.record.interrupted(exc))


def replica_config(cfg: DictConfig, seed: int) -> DictConfig:
    """The composed config of the solo job with ``seed``: its seed, the sweeper's fused keys null."""
    mine = copy.deepcopy(cfg)
    with read_write(mine), open_dict(mine):
        mine.seed = int(seed)
        mine.sweep.fused_seeds = None
        mine.sweep.fused_jobs = None
    return mine


def replica_context(ctx: JobContext, seed: int, job_num: int | None, out_dir: Path | None) -> JobContext:
    """The Hydra context the solo job with ``seed`` would have had: its overrides, job number, own folder."""
    return JobContext(
        output_dir=None if out_dir is None else str(out_dir),
        overrides=replica_overrides(ctx.overrides, seed),
        job_num=job_num,
        mode=ctx.mode,
        sweep_dir=ctx.sweep_dir,
        launcher=ctx.launcher,
    )


def _write_hydra_files(out_dir: Path, cfg: DictConfig, overrides: list[str], fused_dir: Path) -> None:
    """``.hydra/`` of the replica's folder as Hydra writes a solo job's (the run logs them as artifacts)."""
    hydra_dir = out_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    (hydra_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    hydra_yaml = fused_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        (hydra_dir / "hydra.yaml").write_text(hydra_yaml.read_text())


def _refuse_unfusable(job: JobConfig) -> None:
    training = job.training
    if training.resume_target is not None:
        raise ConfigError(
            "a fused group is not resumed as a group",
            path="training.resume",
            value=training.resume,
            fix="resume each replica alone with the command in its run's error (its own checkpoint)",
        )
    if training.strategy != "default":
        raise ConfigError(
            "fused replicates train on one device",
            path="training.strategy",
            value=training.strategy,
            fix="use training.strategy=default, or drop sweep.fuse_replicates=true",
        )


def run_fused(cfg: DictConfig, ctx: JobContext, job: JobConfig) -> JobResult:
    """Train the seeds ``job.sweep.fused_seeds`` in one fit; one MLflow run per replica (see the module docs)."""
    _refuse_unfusable(job)
    seeds = [int(s) for s in cast(list, job.sweep.fused_seeds)]  # set: that is what makes a job fused
    numbers = list(job.sweep.fused_jobs or [])
    if numbers and len(numbers) != len(seeds):
        raise ConfigError(
            "sweep.fused_jobs needs one job number per seed of sweep.fused_seeds",
            path="sweep.fused_jobs",
            value=numbers,
            fix="leave both keys to the sweeper",
        )
    fused_dir = Path(ctx.output_dir) if ctx.output_dir else None
    group = f"job {ctx.job_num if ctx.job_num is not None else 'run'} seeds {','.join(map(str, seeds))}"
    replicas = []
    for i, seed in enumerate(seeds):
        mine = replica_config(cfg, seed)
        rctx = replica_context(
            ctx, seed, numbers[i] if numbers else ctx.job_num, fused_dir / f"seed{seed}" if fused_dir else None
        )
        if fused_dir is not None:
            _write_hydra_files(Path(cast(str, rctx.output_dir)), mine, rctx.overrides, fused_dir)
        replicas.append(ReplicaRun(mine, rctx, validate(mine), group, ctx.job_num))
    experiment = open_experiment(job.tracking)
    mlflow.set_tracking_uri(experiment.uri)
    exp_id = experiment.id
    if job.sweep.skip_finished:
        replicas = [r for r in replicas if not r.finished_before(exp_id)]
        if not replicas:
            return JobResult(status="SKIPPED", experiment_id=exp_id)
    replicas[0].first, replicas[0].fused_progress = True, ctx.progress_path
    if not ctx.in_sweep:  # in a sweep the sweeper said it once ("N jobs fused into M"); a sweep job is quiet
        print(
            f"layerlab: fused job: {len(replicas)} replica(s) (seeds {', '.join(str(r.job.seed) for r in replicas)}) "
            "in one fit",
            flush=True,
        )
    for r in replicas:
        r.open(exp_id)
    results = _train(job, replicas)
    outcomes = [_close(r, res) for r, res in zip(replicas, results)]
    for r, out in zip(replicas, outcomes):
        out.experiment_id = exp_id
        r.report(out)
    failed = next((res.error for res in results if res.error is not None), None)
    if failed is not None:  # as a solo job whose run FAILED: the sweep lists it and exits non-zero
        raise failed
    return JobResult(status="FINISHED", run_id=outcomes[0].run_id, experiment_id=exp_id, metrics=outcomes[0].metrics)


def _close(replica: ReplicaRun, result: ReplicaResult) -> JobResult:
    """Close the replica's run; a FINISHED one in the background while the sweep's next job trains, where
    :mod:`experiments.job.background_close` may (its outcome is known now: the run's metrics and status)."""
    if result.status == "FINISHED" and _in_background(replica.job):
        what = background_close.run_label(replica.run_id, replica.job.seed)
        background_close.close_later(what, functools.partial(replica.close_as, "FINISHED", result))
        return JobResult(
            status="FINISHED", run_id=replica.run_id, metrics=finished_metrics(result.history, result.scores)
        )
    background_close.wait_for_closes()  # its description may still be queued: this thread closes the run now
    return replica.close_as(result.status, result, None if result.error is None else str(result.error))


def _in_background(job: JobConfig) -> bool:
    """Whether the group's runs are described and closed by the writer thread (sweep.close_in_background)."""
    return bool(job.sweep.close_in_background) and background_close.deferring()


def _train(job: JobConfig, replicas: list[ReplicaRun]) -> list[ReplicaResult]:
    """The fused fit; on Ctrl-C every run KILLED, on any other error every run FAILED (then raised)."""
    by_seed = {r.job.seed: r for r in replicas}
    try:
        layout = choose_layout(job.sweep.fuse_layout)
        setup_runtime(job, replicas[0].ctx.launcher.threads_per_job(), side_by_side=layout == "branches")
        engine = FusedReplicas(
            lambda seed: by_seed[seed].build(),
            [r.job.seed for r in replicas],
            lambda model: compile_model(model, job),
            stack=layout == "stacked",
        )
        if _in_background(job):
            for r in replicas:
                r.describe_in_background()
        return engine.fit(lambda seed: by_seed[seed].datasets(), job.training.epochs, [r.callbacks() for r in replicas])
    except KeyboardInterrupt as exc:
        background_close.wait_for_closes()  # a description still being written, before the runs end here
        for r in replicas:
            r.interrupted(exc)
        raise
    except LayerlabError as exc:
        background_close.wait_for_closes()
        _fail_all(replicas, str(exc))
        raise
    except Exception as exc:
        background_close.wait_for_closes()
        _fail_all(replicas, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise


def _fail_all(replicas: list[ReplicaRun], text: str) -> None:
    for r in replicas:
        try:
            r.close_as("FAILED", error=text)
        except Exception as exc:  # never hide the job's own error behind a logging one
            print(f"layerlab: could not close run {r.run_id}: {exc}", flush=True)
