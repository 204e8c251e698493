"""A training job inside one MLflow run: the run's whole life, start to final status.

The run always ends FINISHED, FAILED or KILLED.  If the tracking server goes
away during the job, training goes on: metrics stay in the local journal,
artifacts and the model in the job's output folder, and a ``pending.json``
there lets ``python -m experiments.upload <output dir>`` finish the run later
(:mod:`experiments.tracking.channel`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import mlflow
import mlflow.data
from omegaconf import DictConfig

from experiments.backends import backend_tags
from experiments.config.access import config_hash
from experiments.config.schema import JobConfig, validate
from experiments.data import make_tf_dataset
from experiments.errors import ConfigError, LayerlabError, TrackingError
from experiments.job import artifacts
from experiments.job.context import JobContext
from experiments.job.naming import child_run_name
from experiments.job.prepare import prepare
from experiments.job.result import JobResult
from experiments.models import count_params, summary_text
from experiments.models.picture import PICTURE, draw_model
from experiments.tracking import tags
from experiments.tracking.auth import access_errors
from experiments.tracking.channel import RunChannel
from experiments.tracking.doctor import close_lost
from experiments.tracking.heartbeat import Heartbeat
from experiments.tracking.redaction import redact, tags_json
from experiments.tracking.sink import MetricSink
from experiments.tracking.store import ensure_experiment, find_parent, find_runs, git_state
from experiments.tracking.uri import check_store, open_hint, resolve_uri
from experiments.training.callbacks import make_callbacks
from experiments.training.checkpoint import check_checkpoint, load_checkpoint
from experiments.training.compile import compile_model
from experiments.training.distribute import is_chief, make_strategy, shard_by_data
from experiments.training.loop import fit_and_score
from experiments.training.runtime import setup_runtime

log = logging.getLogger(__name__)


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
        self.uri = resolve_uri(self.job.tracking.uri)
        self.hash = config_hash(cfg)
        self.metric = self.job.metric
        self.epochs_done = 0
        self.sink: MetricSink | None = None
        self.checkpointer = None
        self.channel = RunChannel(self.uri, enabled=is_chief(self.job.training))  # multi-worker: only the chief logs

    # ------------------------------------------------------------------ public
    def run(self) -> JobResult:
        if not self.channel.enabled:
            result = self._train(None, None)
            print(f"layerlab: worker finished ({self.epochs_done} epochs); the chief logged the run", flush=True)
            return result
        tracking = self.job.tracking
        check_store(self.uri, tracking.timeout_s)
        mlflow.set_tracking_uri(self.uri)
        exp_id = ensure_experiment(self.uri, tracking.experiment, tracking.artifact_root)
        close_lost(self.uri, [exp_id], quiet=True)  # runs whose process died: FAILED, not RUNNING forever
        if self.job.sweep.skip_finished:
            done = self._runs_of_this_config(exp_id, ["FINISHED"])
            if done:
                print(f"layerlab: skipped, config {self.hash} already has FINISHED run {done[0].info.run_id}")
                return JobResult(status="SKIPPED", run_id=done[0].info.run_id, experiment_id=exp_id)
        resume_run, checkpoint = self._resume_target(exp_id)
        with access_errors(self.uri, self.job.tracking.experiment, "write to"):  # the first write: 403 if read-only
            run_id = self._start_run(exp_id, resume_run).info.run_id
        heartbeat = Heartbeat(self.uri, run_id).start()
        status, result = "FAILED", None
        t0 = time.perf_counter()
        try:
            result = self._train(run_id, checkpoint)
            status = "FINISHED"
            result.experiment_id = exp_id
            return result
        except KeyboardInterrupt as exc:
            status = "KILLED"
            self._keep_last_epoch()
            self._log_error(f"interrupted ({exc or 'Ctrl-C'}) after {self.epochs_done} completed epoch(s); "
                            f"resume with: python runner.py {' '.join(self.ctx.overrides)} training.resume={run_id}")
            raise
        except LayerlabError as exc:
            self._log_error(str(exc))
            raise
        except Exception as exc:
            self._log_error(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
            raise
        finally:
            heartbeat.stop()
            self.channel.track("wall time tag", lambda: mlflow.set_tag(tags.WALL_TIME_S,
                                                                       f"{time.perf_counter() - t0:.2f}"))
            self._close(run_id, status)
            if result is not None:
                result.status = status
                if not self.ctx.in_sweep:  # a sweep's display prints each job's result line (sweeps.progress_display)
                    print(self._final_line(result, exp_id), flush=True)

    # --------------------------------------------------------- run lifecycle
    def _runs_of_this_config(self, exp_id: str, statuses: list[str]) -> list:
        """Runs of the experiment made with the same config (hash tag), newest first."""
        return find_runs(self.uri, exp_id, f"tags.`{tags.CONFIG_HASH}` = '{self.hash}'", statuses=statuses)

    def _resume_target(self, exp_id: str):
        """(run to resume or None, checkpoint folder or None) from ``training.resume``."""
        want = self.job.training.resume
        if want in (None, False) or str(want).lower() in ("false", "null", "none"):
            return None, None
        if want is True or str(want).lower() == "true":
            runs = self._runs_of_this_config(exp_id, ["KILLED", "FAILED"])
            if not runs:
                raise ConfigError("no interrupted run of this config to resume", path="training.resume", value=True,
                                  fix="run without training.resume, or pass the run id: training.resume=<run id>")
            run = runs[0]
        else:
            try:
                run = mlflow.MlflowClient(self.uri).get_run(str(want))
            except Exception:
                raise ConfigError("no such MLflow run", path="training.resume", value=want,
                                  fix="copy the run id from `mlflow ui` or from the message of the interrupted run") from None
        their_hash = run.data.tags.get(tags.CONFIG_HASH)
        if their_hash not in (None, self.hash):
            raise ConfigError(f"run {run.info.run_id} was made with another config (hash {their_hash}, this one "
                              f"{self.hash})", path="training.resume", value=str(want),
                              fix="pass the same overrides as the interrupted run (its error.txt has the exact "
                                  "command), plus training.resume")
        folder = Path(run.data.tags.get(tags.OUTPUT_DIR, "")) / "checkpoints"
        if not (folder / "last.keras").exists():
            raise ConfigError(f"run {run.info.run_id} has no checkpoint at {folder}", path="training.resume",
                              value=str(want), fix="resume on the machine where it ran, or start a new run")
        check_checkpoint(folder)  # damaged: say so before the run is reopened
        return run, folder

    def _start_run(self, exp_id: str, resume_run):
        if resume_run is not None:
            run = mlflow.start_run(run_id=resume_run.info.run_id)
            mlflow.set_tags({tags.RESUMED: "true", tags.OUTPUT_DIR: str(self.out_dir)})
            return run
        name, run_tags = self._run_identity(exp_id)
        return mlflow.start_run(experiment_id=exp_id, run_name=name, tags=run_tags)

    def _run_identity(self, exp_id: str) -> tuple[str, dict]:
        """(run name, tags) of a new run: by its model and seed, or in a sweep by what differs from the others."""
        job, ctx = self.job, self.ctx
        run_tags = {
            tags.ROLE: tags.ROLE_JOB,
            tags.MODEL: job.model.name,
            tags.DATASET: job.dataset.name,
            tags.OVERRIDES: redact(tags_json(ctx.overrides)),
            tags.CONFIG_HASH: self.hash,
            tags.OUTPUT_DIR: str(self.out_dir),
            tags.METRIC: self.metric.name,
            tags.METRIC_MODE: self.metric.mode,
            **backend_tags(job.training.jit_compile),
            **git_state(),
        }
        if job.optuna is not None:  # a trial of hydra/sweeper=optuna (experiments.training.pruning)
            run_tags.update({tags.TRIAL_NUMBER: str(job.optuna.trial_number), tags.STUDY: job.optuna.study})
        act = job.model.activation
        name = f"{job.model.name}-{act}-seed{job.seed}" if act else f"{job.model.name}-seed{job.seed}"
        if ctx.in_sweep and ctx.sweep_dir:
            parent = find_parent(self.uri, exp_id, ctx.sweep_dir)
            if parent is None:  # never a top-level orphan that no sweep summary or comparison would see
                raise TrackingError(f"this job belongs to the sweep in {ctx.sweep_dir}, but that sweep has no RUNNING "
                                    f"parent run in experiment {job.tracking.experiment!r} of {redact(self.uri)}",
                                    path="tracking.uri",
                                    fix="run the sweep again from its own command (its parent run is opened when it "
                                        "starts); a sweep that was stopped is completed with the command in its "
                                        "parent run's error")
            run_tags[tags.PARENT_RUN_ID] = parent.info.run_id
            run_tags[tags.SWEEP_ID] = parent.data.tags.get(tags.SWEEP_ID, "")
            sweep_overrides = json.loads(parent.data.tags.get(tags.OVERRIDES, "[]") or "[]")
            run_tags[tags.JOB_NUM] = str(ctx.job_num)
            # Named by what differs between the sweep's jobs: activation=abs model=lambda_mlp seed=3.
            name = child_run_name(ctx.overrides, sweep_overrides, job.sweep.replicate_key) or f"#{ctx.job_num} {name}"
        return name, run_tags

    def _close(self, run_id: str, status: str) -> None:
        """Flush metrics and end the run; or leave everything ready for a later upload."""
        delivered = True
        if self.sink is not None:
            delivered = self.sink.close(timeout=self.job.tracking.retry_s + 30)
        if not delivered:
            self.channel.go_offline(self.sink.last_error or "metrics could not be delivered")
        if self.channel.online:
            try:
                mlflow.end_run(status=status)  # pops the run locally first, even if the server then fails
                return
            except Exception as exc:
                if not self.channel.server_down():
                    raise
                self.channel.go_offline(f"{type(exc).__name__}: {exc}")
        else:
            try:
                mlflow.end_run(status=status)
            except Exception as exc:  # the server is gone: the local run is popped all the same
                log.debug("end_run while offline: %r", exc)
        self.channel.leave_for_upload(self.out_dir, run_id, status, self.sink.sent if self.sink else 0)

    def _keep_last_epoch(self) -> None:
        if self.checkpointer is None:
            return
        try:
            self.checkpointer.flush()  # the last completed epoch, for training.resume
        except Exception as exc:  # never hide the interruption itself
            print(f"layerlab: could not write the checkpoint: {exc}", file=sys.stderr)

    def _log_error(self, text: str) -> None:
        (self.out_dir / "error.txt").write_text(redact(text))
        self.channel.track("error.txt", lambda: mlflow.log_text(redact(text), "error.txt"), best_effort=True)
        self.channel.track("error tag", lambda: mlflow.set_tag(tags.ERROR, redact(text.splitlines()[0])[:4000]),
                           best_effort=True)

    # ------------------------------------------------------------- training
    def _train(self, run_id: str | None, checkpoint: Path | None) -> JobResult:
        job = self.job
        if checkpoint is None:
            artifacts.log_params(self.cfg, self.channel)
        artifacts.log_config_files(self.cfg, self.out_dir, self.channel)
        setup_runtime(job, self.ctx.launcher.threads_per_job())
        strategy = make_strategy(job.training)
        if strategy.num_replicas_in_sync > 1:
            print(f"layerlab: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replicas; global batch "
                  f"{job.training.batch_size}", flush=True)
        data, model, initial_epoch = self._model(strategy, run_id, checkpoint)
        self.epochs_done = initial_epoch
        bs, seed = job.training.batch_size, job.seed
        datasets = {"train": make_tf_dataset(*data.train, bs, shuffle=job.training.shuffle, seed=seed),
                    "val": make_tf_dataset(*data.val, bs, shuffle=False, seed=seed),
                    "test": make_tf_dataset(*data.test, bs, shuffle=False, seed=seed)}
        datasets = {k: shard_by_data(v) for k, v in datasets.items()}
        if self.channel.enabled:
            self.sink = MetricSink(mlflow.MlflowClient(self.uri), run_id, self.out_dir / "metrics.jsonl",
                                   retry_for_s=job.tracking.retry_s)
        # A non-chief worker checkpoints into its own folder: two writers must not share one file.
        ck_dir = self.out_dir if self.channel.enabled else self.out_dir / f"worker_{os.getpid()}"
        callbacks = make_callbacks(job, out_dir=ck_dir, sink=self._on_epoch, run_id=run_id,
                                   progress=self.ctx.progress_path)
        self.checkpointer = next((c for c in callbacks if hasattr(c, "flush")), None)
        history, final = fit_and_score(model, strategy, job.training, datasets, callbacks, initial_epoch)
        pruned = next((c.pruned_epoch for c in callbacks if getattr(c, "pruned_epoch", None)), None)
        if pruned:  # stopped by the study's pruner: FINISHED, and said so
            self.channel.track("pruned tags", lambda: mlflow.set_tags({tags.PRUNED: "true",
                                                                        tags.PRUNED_EPOCH: str(pruned)}))
        if self.sink is not None:
            self.sink(final, self.epochs_done)  # journaled like the epochs (early stopping may end before epochs)
            artifacts.log_outputs(job, model, data, history, self.out_dir, self.channel)
        metrics = {k: float(v[-1]) for k, v in (history.history or {}).items() if v}
        return JobResult(status="FINISHED", run_id=run_id, metrics={**metrics, **final})

    def _model(self, strategy, run_id: str | None, checkpoint: Path | None):
        """(data, compiled model, epochs already done), built inside the strategy's scope."""
        initial_epoch = 0
        with strategy.scope():  # variables (model and optimizer) are created on every replica
            data, model = prepare(self.job)
            if checkpoint is not None:
                initial_epoch, model = load_checkpoint(checkpoint)  # a damaged file: a clear ConfigError
                print(f"layerlab: resuming run {run_id} after epoch {initial_epoch}", flush=True)
            else:
                compile_model(model, self.job)
        if checkpoint is None:
            self._describe(model, data)
        return data, model, initial_epoch

    def _describe(self, model, data) -> None:
        """The model's size, summary and picture and the dataset inputs, into the active run."""
        counts = count_params(model)
        self.channel.track("model params", lambda: mlflow.log_params({
            "n_params_total": counts["total"], "n_params_trainable": counts["trainable"],
            **{f"data.{k}": v for k, v in data.summary().items()}}))
        self.channel.track("model summary", lambda: mlflow.log_text(summary_text(model), "model_summary.txt"))
        picture = draw_model(model, self.out_dir / PICTURE) if self.channel.enabled else None
        if picture is not None:  # beside model_summary.txt
            self.channel.track("model picture", lambda: mlflow.log_artifact(str(picture)), best_effort=True)
        self.channel.track("dataset inputs", lambda: log_dataset_inputs(data), best_effort=True)

    def _on_epoch(self, metrics: dict, step: int) -> None:
        self.epochs_done = step + 1
        if self.sink is not None:
            self.sink(metrics, step)

    def _final_line(self, result: JobResult, exp_id: str) -> str:
        keys = [k for k in (self.metric.val, self.metric.test, "test_loss") if k in result.metrics]
        shown = " ".join(f"{k}={result.metrics[k]:.4f}" for k in dict.fromkeys(keys or sorted(result.metrics)[:3]))
        state = result.status + ("" if self.channel.online else " (tracking pending upload)")
        return (f"layerlab: {state} {shown} | run {result.run_id} in experiment "
                f"{self.job.tracking.experiment!r} (id {exp_id}) | open with {open_hint(self.uri)}")


def log_dataset_inputs(data) -> None:
    """Record the splits as MLflow dataset inputs (the UI's Dataset column): name, digest, rows per split.

    Args:
        data: the job's :class:`~experiments.data.splits.DataSplits`.
    """
    for context, (x, y) in (("training", data.train), ("validation", data.val), ("test", data.test)):
        dataset = mlflow.data.from_numpy(x, targets=y, name=f"{data.name} ({context}, {len(y)} rows)")
        mlflow.log_input(dataset, context=context)
