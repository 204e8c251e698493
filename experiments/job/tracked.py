"""A solo training job inside one MLflow run: resume or skip, train, and the run's final status.

The run's own life (identity, error, closing, the offline fallback) is the
:class:`~experiments.job.run_record.RunRecord`'s; this module adds the solo
job's steps around it.  The run always ends FINISHED, FAILED or KILLED.  If
the tracking server goes away during the job, training goes on: metrics stay
in the local journal, artifacts and the model in the job's output folder, and
a ``pending.json`` there lets ``python -m experiments.upload <output dir>``
finish the run later (:mod:`experiments.tracking.channel`).
"""

from __future__ import annotations

import os
import tempfile
import traceback
from pathlib import Path
from typing import cast

import mlflow
from omegaconf import DictConfig

from experiments.adapters.mlflow_internals import adopted, detach_active_run
from experiments.config.schema import JobConfig, validate
from experiments.errors import ConfigError, LayerlabError
from experiments.job import artifacts, background_close
from experiments.job.context import JobContext
from experiments.job.prepare import load_data, prepare, split_datasets
from experiments.job.result import JobResult, finished_metrics
from experiments.job.run_record import RunRecord
from experiments.tracking import tags
from experiments.tracking.channel import RunChannel
from experiments.tracking.experiment import open_experiment
from experiments.tracking.uri import resolve_uri
from experiments.training.callbacks import make_callbacks
from experiments.training.checkpoint import check_checkpoint, load_checkpoint
from experiments.training.compile import compile_model
from experiments.training.distribute import is_chief, make_strategy, shard_by_data
from experiments.training.loop import fit_and_score
from experiments.training.runtime import setup_runtime


class TrackedJob:
    """Runs one config as one MLflow run (new, or resumed from a checkpoint).

    Args:
        cfg: the composed config: what is logged (params, config.yaml) and hashed; nothing reads keys from it.
        ctx: the Hydra context of the job (:func:`experiments.job.context.hydra_context`).
        job: ``cfg`` validated (:func:`experiments.config.schema.validate`); validated here when not given.
    """

    def __init__(self, cfg: DictConfig, ctx: JobContext, job: JobConfig | None = None):
        self.cfg = cfg
        self.job = job if job is not None else validate(cfg)
        self.ctx = ctx
        self.out_dir = Path(ctx.output_dir or tempfile.mkdtemp(prefix="layerlab-")).resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        uri = resolve_uri(self.job.tracking.uri)
        self.channel = RunChannel(uri, enabled=is_chief(self.job.training))  # multi-worker: only the chief logs
        self.record = RunRecord(cfg, ctx, self.job, self.out_dir, uri, self.channel)
        self.data = None  # the dataset splits, loaded before the run starts (experiments.job.prepare.load_data)
        # In a sweep's own process, a FINISHED run's outputs are written while the next job trains
        # (experiments.job.background_close): set by _train to what is left to log, then handed over.
        self.close_later = (
            self.job.sweep.close_in_background and self.job.optuna is None and self.job.training.strategy == "default"
        )
        self._outputs: tuple | None = None

    def run(self) -> JobResult:
        record = self.record
        result: JobResult | None
        if not self.channel.enabled:
            result = self._train(None, None)
            print(f"layerlab: worker finished ({record.epochs_done} epochs); the chief logged the run", flush=True)
            return result
        experiment = open_experiment(self.job.tracking)
        mlflow.set_tracking_uri(experiment.uri)
        exp_id = experiment.id
        if self.job.sweep.skip_finished:
            done = record.finished_before(exp_id)
            if done:
                print(f"layerlab: skipped, config {record.hash} already has FINISHED run {done}")
                return JobResult(status="SKIPPED", run_id=done, experiment_id=exp_id)
        resume_run, checkpoint = self._resume_target(exp_id)
        self.data = load_data(self.job)  # bad data stops here, before a run exists (nothing half-logged)
        run_id = record.start(exp_id, resume_run)
        status, result = "FAILED", None
        try:
            result = self._train(run_id, checkpoint)
            status = "FINISHED"
            result.experiment_id = exp_id
            return result
        except KeyboardInterrupt as exc:
            status = "KILLED"
            record.log_error(record.interrupted(exc))
            raise
        except LayerlabError as exc:
            record.log_error(str(exc))
            raise
        except Exception as exc:
            record.log_error(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
            raise
        finally:
            if status == "FINISHED" and self._outputs is not None:
                self._finish_in_background()
            else:
                record.finish(status)
            if result is not None:
                result.status = status
                if not self.ctx.in_sweep:  # a sweep's display prints each job's result line (sweeps.progress.display)
                    print(record.final_line(result, exp_id), flush=True)

    def _resume_target(self, exp_id: str):
        """(run to resume or None, checkpoint folder or None) from ``training.resume``."""
        want = self.job.training.resume_target
        if want is None:
            return None, None
        if want is True:
            runs = self.record.runs_of_this_config(exp_id, ["KILLED", "FAILED"])
            if not runs:
                raise ConfigError(
                    "no interrupted run of this config to resume",
                    path="training.resume",
                    value=True,
                    fix="run without training.resume, or pass the run id: training.resume=<run id>",
                )
            run = runs[0]
        else:
            try:
                run = mlflow.MlflowClient(self.record.uri).get_run(cast(str, want))
            except Exception:
                raise ConfigError(
                    "no such MLflow run",
                    path="training.resume",
                    value=want,
                    fix="copy the run id from `mlflow ui` or from the message of the interrupted run",
                ) from None
        their_hash, mine = run.data.tags.get(tags.CONFIG_HASH), self.record.hash
        if their_hash not in (None, mine):
            raise ConfigError(
                f"run {run.info.run_id} was made with another config (hash {their_hash}, this one {mine})",
                path="training.resume",
                value=str(want),
                fix="pass the same overrides as the interrupted run (its error.txt has the exact "
                "command), plus training.resume",
            )
        folder = Path(run.data.tags.get(tags.OUTPUT_DIR, "")) / "checkpoints"
        if not (folder / "last.keras").exists():
            raise ConfigError(
                f"run {run.info.run_id} has no checkpoint at {folder}",
                path="training.resume",
                value=str(want),
                fix="resume on the machine where it ran, or start a new run",
            )
        check_checkpoint(folder)  # damaged: say so before the run is reopened
        return run, folder

    def _train(self, run_id: str | None, checkpoint: Path | None) -> JobResult:
        job, record = self.job, self.record
        if checkpoint is None:
            artifacts.log_params(self.cfg, self.channel)
        artifacts.log_config_files(self.cfg, self.out_dir, self.channel)
        setup_runtime(job, self.ctx.launcher.threads_per_job())
        strategy = make_strategy(job.training)
        if strategy.num_replicas_in_sync > 1:
            print(
                f"layerlab: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replicas; global batch "
                f"{job.training.batch_size}",
                flush=True,
            )
        data, model, initial_epoch = self._model(strategy, run_id, checkpoint)
        record.epochs_done = initial_epoch
        datasets = {k: shard_by_data(v) for k, v in split_datasets(job, data).items()}
        # A non-chief worker checkpoints into its own folder: two writers must not share one file.
        ck_dir = self.out_dir if self.channel.enabled else self.out_dir / f"worker_{os.getpid()}"
        callbacks = make_callbacks(
            job, out_dir=ck_dir, sink=record.on_epoch, run_id=run_id, progress=self.ctx.progress_path
        )
        record.checkpointer = next((c for c in callbacks if hasattr(c, "flush")), None)
        history, final = fit_and_score(model, strategy, job.training, datasets, callbacks, initial_epoch)
        pruned = next((c.pruned_epoch for c in callbacks if getattr(c, "pruned_epoch", None)), None)
        if pruned:  # stopped by the study's pruner: FINISHED, and said so
            self.channel.track(
                "pruned tags", lambda: mlflow.set_tags({tags.PRUNED: "true", tags.PRUNED_EPOCH: str(pruned)})
            )
        if record.sink is not None:
            if self.close_later and background_close.deferring():
                self._outputs = (model, data, history, final)  # logged by the writer thread (run() hands it over)
            else:
                self._log_outputs(model, data, history, final)
        return JobResult(status="FINISHED", run_id=run_id, metrics=finished_metrics(history, final))

    def _log_outputs(self, model, data, history, final: dict) -> None:
        record = self.record
        if record.sink is not None:  # journaled like the epochs (early stopping may end before epochs)
            record.sink(final, record.epochs_done)
        artifacts.log_outputs(self.job, model, data, history, self.out_dir, self.channel)

    def _finish_in_background(self) -> None:
        """Hand the run, still active in this thread, to the writer thread: it logs the outputs and ends the run
        FINISHED while the sweep's next job trains (a failure there is reported when the batch ends)."""
        outputs, self._outputs = cast(tuple, self._outputs), None
        active = detach_active_run()

        def finish() -> None:
            with adopted(active):
                try:
                    self._log_outputs(*outputs)
                finally:
                    self.record.finish("FINISHED")

        background_close.close_later(background_close.run_label(self.record.run_id, self.job.seed), finish)

    def _model(self, strategy, run_id: str | None, checkpoint: Path | None):
        """(data, compiled model, epochs already done), built inside the strategy's scope."""
        initial_epoch = 0
        with strategy.scope():  # variables (model and optimizer) are created on every replica
            data, model = prepare(self.job, self.data)
            if checkpoint is not None:
                initial_epoch, model = load_checkpoint(checkpoint)  # a damaged file: a clear ConfigError
                print(f"layerlab: resuming run {run_id} after epoch {initial_epoch}", flush=True)
            else:
                compile_model(model, self.job)
        if checkpoint is None:
            self.record.describe(model, data)
        return data, model, initial_epoch
