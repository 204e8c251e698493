"""One MLflow run's life, for a solo job and for each replica of a fused job alike.

A :class:`RunRecord` names and tags the run (its identity), starts or creates
it with its heartbeat and metric sink, describes the model and data in it,
writes an error with the command that reruns it, and at the end stamps the
wall time and closes it, or leaves it ready for ``python -m experiments.upload``
when the tracking server went away (:mod:`experiments.tracking.channel`).
The training itself belongs to the caller (:mod:`experiments.job.tracked`,
:mod:`experiments.job.fused_job`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import cast

import mlflow
import mlflow.data
from omegaconf import DictConfig

from experiments.adapters.mlflow_internals import start_run_tags
from experiments.backends import backend_tags
from experiments.config.access import config_hash
from experiments.config.schema import JobConfig
from experiments.errors import TrackingError
from experiments.job.context import JobContext
from experiments.job.naming import child_run_name
from experiments.job.result import JobResult
from experiments.models import count_params, summary_text
from experiments.models.picture import PICTURE, draw_model
from experiments.tracking import tags
from experiments.tracking.auth import access_errors
from experiments.tracking.channel import RunChannel
from experiments.tracking.heartbeat import Heartbeat
from experiments.tracking.redaction import redact, tags_json
from experiments.tracking.sink import MetricSink
from experiments.tracking.store import find_parent, find_runs, git_state
from experiments.tracking.uri import open_hint

log = logging.getLogger(__name__)


class RunRecord:
    """The MLflow run of one config: identity, description, error, wall time, closing, final line.

    Args:
        cfg: the composed config (hashed: the ``config_hash`` tag).
        ctx: the job's Hydra context (overrides, sweep folder, job number).
        job: ``cfg`` validated.
        out_dir: the job's output folder (error.txt, metrics journal, what an upload needs).
        uri: the resolved tracking URI.
        channel: the job's :class:`~experiments.tracking.channel.RunChannel` (online, or pending upload).
    """

    def __init__(self, cfg: DictConfig, ctx: JobContext, job: JobConfig, out_dir: Path, uri: str, channel: RunChannel):
        self.cfg, self.ctx, self.job = cfg, ctx, job
        self.out_dir, self.uri, self.channel = out_dir, uri, channel
        self.hash = config_hash(cfg)
        self.run_id: str | None = None
        self.sink: MetricSink | None = None
        self.heartbeat: Heartbeat | None = None
        self.checkpointer = None  # the job's checkpoint callback: flushed when interrupted
        self.epochs_done = 0
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------- opening
    def runs_of_this_config(self, exp_id: str, statuses: list[str]) -> list:
        """Runs of the experiment made with the same config (hash tag), newest first."""
        return find_runs(self.uri, exp_id, f"tags.`{tags.CONFIG_HASH}` = '{self.hash}'", statuses=statuses)

    def finished_before(self, exp_id: str) -> str | None:
        """``sweep.skip_finished``: the id of a FINISHED run of this config, if there is one."""
        done = self.runs_of_this_config(exp_id, ["FINISHED"])
        return done[0].info.run_id if done else None

    def identity(self, exp_id: str) -> tuple[str, dict]:
        """(run name, tags) of a new run: by its model and seed, or in a sweep by what differs from the others."""
        job, ctx = self.job, self.ctx
        run_tags = {
            tags.ROLE: tags.ROLE_JOB,
            tags.MODEL: job.model.name,
            tags.DATASET: job.dataset.name,
            tags.OVERRIDES: redact(tags_json(ctx.overrides)),
            tags.CONFIG_HASH: self.hash,
            tags.OUTPUT_DIR: str(self.out_dir),
            tags.METRIC: job.metric.name,
            tags.METRIC_MODE: job.metric.mode,
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
                raise TrackingError(
                    f"this job belongs to the sweep in {ctx.sweep_dir}, but that sweep has no RUNNING "
                    f"parent run in experiment {job.tracking.experiment!r} of {redact(self.uri)}",
                    path="tracking.uri",
                    fix="run the sweep again from its own command (its parent run is opened when it "
                    "starts); a sweep that was stopped is completed with the command in its "
                    "parent run's error",
                )
            run_tags[tags.PARENT_RUN_ID] = parent.info.run_id
            run_tags[tags.SWEEP_ID] = parent.data.tags.get(tags.SWEEP_ID, "")
            sweep_overrides = json.loads(parent.data.tags.get(tags.OVERRIDES, "[]") or "[]")
            run_tags[tags.JOB_NUM] = str(ctx.job_num)
            # Named by what differs between the sweep's jobs: activation=abs model=lambda_mlp seed=3.
            name = child_run_name(ctx.overrides, sweep_overrides, job.sweep.replicate_key) or f"#{ctx.job_num} {name}"
        return name, run_tags

    def start(self, exp_id: str, resume_run=None) -> str:
        """Start the run as the active (fluent) run: a new one, or ``resume_run`` reopened."""
        with access_errors(self.uri, self.job.tracking.experiment, "write to"):  # the first write: 403 if read-only
            if resume_run is not None:
                run = mlflow.start_run(run_id=resume_run.info.run_id)
                mlflow.set_tags({tags.RESUMED: "true", tags.OUTPUT_DIR: str(self.out_dir)})
            else:
                name, run_tags = self.identity(exp_id)
                run = mlflow.start_run(experiment_id=exp_id, run_name=name, tags=run_tags)
        return self._began(run.info.run_id)

    def create(self, exp_id: str, extra_tags: dict[str, str]) -> str:
        """Create the run without making it active (several runs of one process), with ``start_run``'s tags."""
        name, run_tags = self.identity(exp_id)
        run_tags.update(extra_tags)
        with access_errors(self.uri, self.job.tracking.experiment, "write to"):
            run = mlflow.MlflowClient(self.uri).create_run(exp_id, run_name=name, tags=start_run_tags(run_tags))
        return self._began(run.info.run_id)

    def _began(self, run_id: str) -> str:
        self.run_id = run_id
        self.heartbeat = Heartbeat(self.uri, run_id).start()
        self.sink = MetricSink(
            mlflow.MlflowClient(self.uri), run_id, self.out_dir / "metrics.jsonl", retry_for_s=self.job.tracking.retry_s
        )
        self._t0 = time.perf_counter()
        return run_id

    # ----------------------------------------------------------- while open
    def on_epoch(self, metrics: dict, step: int) -> None:
        """The training callbacks' sink: counts the epoch and journals/sends its metrics."""
        self.epochs_done = step + 1
        if self.sink is not None:
            self.sink(metrics, step)

    def describe(self, model, data) -> None:
        """The model's size, summary and picture and the dataset inputs, into the active run."""
        counts = count_params(model)
        self.channel.track(
            "model params",
            lambda: mlflow.log_params(
                {
                    "n_params_total": counts["total"],
                    "n_params_trainable": counts["trainable"],
                    **{f"data.{k}": v for k, v in data.summary().items()},
                }
            ),
        )
        self.channel.track("model summary", lambda: mlflow.log_text(summary_text(model), "model_summary.txt"))
        picture = draw_model(model, self.out_dir / PICTURE) if self.channel.enabled else None
        if picture is not None:  # beside model_summary.txt
            self.channel.track("model picture", lambda: mlflow.log_artifact(str(picture)), best_effort=True)
        self.channel.track("dataset inputs", lambda: log_dataset_inputs(data), best_effort=True)

    def interrupted(self, exc: BaseException) -> str:
        """Ctrl-C: keep the last completed epoch; the error text, with the command that resumes this run."""
        self.keep_last_epoch()
        return (
            f"interrupted ({exc or 'Ctrl-C'}) after {self.epochs_done} completed epoch(s); "
            f"resume with: python runner.py {' '.join(self.ctx.overrides)} training.resume={self.run_id}"
        )

    def keep_last_epoch(self) -> None:
        if self.checkpointer is None:
            return
        try:
            self.checkpointer.flush()  # the last completed epoch, for training.resume
        except Exception as exc:  # never hide the interruption itself
            print(f"layerlab: could not write the checkpoint: {exc}", file=sys.stderr)

    def log_error(self, text: str) -> None:
        """``error.txt`` in the output folder and the run, and the first line as the run's error tag."""
        (self.out_dir / "error.txt").write_text(redact(text))
        self.channel.track("error.txt", lambda: mlflow.log_text(redact(text), "error.txt"), best_effort=True)
        self.channel.track(
            "error tag", lambda: mlflow.set_tag(tags.ERROR, redact(text.splitlines()[0])[:4000]), best_effort=True
        )

    # ------------------------------------------------------------- closing
    def finish(self, status: str) -> None:
        """Stop the heartbeat, stamp the wall time, then close the active run ``status`` (or leave it for upload)."""
        if self.heartbeat is not None:
            self.heartbeat.stop()
        wall = time.perf_counter() - self._t0
        self.channel.track("wall time tag", lambda: mlflow.set_tag(tags.WALL_TIME_S, f"{wall:.2f}"))
        self._close(status)

    def _close(self, status: str) -> None:
        """Flush metrics and end the run; or leave everything ready for a later upload."""
        delivered = True
        if self.sink is not None:
            delivered = self.sink.close(timeout=self.job.tracking.retry_s + 30)
        if not delivered and self.sink is not None:  # only a sink can fail to deliver
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
        self.channel.leave_for_upload(self.out_dir, cast(str, self.run_id), status, self.sink.sent if self.sink else 0)

    def final_line(self, result: JobResult, exp_id: str | None) -> str:
        """The job's last line: outcome, the judged metrics, the run and how to open it."""
        metric = self.job.metric
        keys = [k for k in (metric.val, metric.test, "test_loss") if k in result.metrics]
        shown = " ".join(f"{k}={result.metrics[k]:.4f}" for k in dict.fromkeys(keys or sorted(result.metrics)[:3]))
        state = result.status + ("" if self.channel.online else " (tracking pending upload)")
        return (
            f"layerlab: {state} {shown} | run {result.run_id} in experiment "
            f"{self.job.tracking.experiment!r} (id {exp_id}) | open with {open_hint(self.uri)}"
        )


def log_dataset_inputs(data) -> None:
    """Record the splits as MLflow dataset inputs (the UI's Dataset column): name, digest, rows per split.

    Args:
        data: the job's :class:`~experiments.data.splits.DataSplits`.
    """
    # MLflow's own digest hashes only the first 10,000 elements; the loader's SHA-256 covers everything it read
    # (cut to the 36 characters MLflow's store keeps).
    digest = str(data.origin.get("sha256", ""))[:36] or None
    for context, (x, y) in (("training", data.train), ("validation", data.val), ("test", data.test)):
        # mlflow.data names its constructors lazily, which the type checker does not see
        name = f"{data.name} ({context}, {len(y)} rows)"
        dataset = mlflow.data.from_numpy(x, targets=y, name=name, digest=digest)  # type: ignore[attr-defined]
        mlflow.log_input(dataset, context=context)
