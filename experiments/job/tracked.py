"""A training job inside one MLflow run: the run's whole life, start to final status.

The run always ends FINISHED, FAILED or KILLED.  If the tracking server goes
away during the job, training goes on: metrics stay in the local journal,
artifacts and the model in the job's output folder, and a ``pending.json``
there lets ``python -m experiments.upload <output dir>`` finish the run later.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.tracking import store as tracking
from experiments.config.schema import config_hash, flatten, resolved_container, select
from experiments.errors import ConfigError, LayerlabError, TrackingError
from experiments.job.entry import JobResult, prepare

TAG = tracking.TAG_PREFIX


class TrackedJob:
    """Runs one config as one MLflow run (new, or resumed from a checkpoint).

    Args:
        cfg: the composed, validated job config.
        ctx: the Hydra context (:func:`experiments.job.entry.hydra_context`).
    """

    def __init__(self, cfg: DictConfig, ctx: dict):
        self.cfg = cfg
        self.ctx = ctx
        self.out_dir = Path(ctx["output_dir"] or tempfile.mkdtemp(prefix="layerlab-")).resolve()
        self.uri = tracking.resolve_uri(os.environ.get(tracking.ENV_TRACKING_URI) or select(cfg, "tracking.uri", None))
        self.hash = config_hash(cfg)
        self.epochs_done = 0
        self.offline_reason: str | None = None  # set when the tracking server stopped answering
        self.pending: list[str] = []
        self.sink = None
        from experiments.training.distribute import is_chief

        self.tracked = is_chief(cfg)  # multi-worker: only the chief talks to MLflow

    # ------------------------------------------------------------------ public
    def run(self) -> JobResult:
        import mlflow

        cfg = self.cfg
        if not self.tracked:
            result = self._train(None, None)
            print(f"layerlab: worker finished ({self.epochs_done} epochs); the chief logged the run", flush=True)
            return result
        tracking.check_store(self.uri, float(select(cfg, "tracking.timeout_s", 10)))
        mlflow.set_tracking_uri(self.uri)
        exp_id = self._experiment_id()
        if select(cfg, "sweep.skip_finished", False):
            done = self._runs_of_this_config(exp_id, ["FINISHED"])
            if done:
                print(f"layerlab: skipped, config {self.hash} already has FINISHED run {done[0].info.run_id}")
                return JobResult(status="SKIPPED", run_id=done[0].info.run_id, experiment_id=exp_id)
        resume_run, checkpoint = self._resume_target(exp_id)
        run = self._start_run(exp_id, resume_run)
        run_id = run.info.run_id
        status, result = "FAILED", None
        t0 = time.perf_counter()
        try:
            result = self._train(run_id, checkpoint)
            status = "FINISHED"
            result.experiment_id = exp_id
            return result
        except KeyboardInterrupt as exc:
            status = "KILLED"
            if getattr(self, "checkpointer", None) is not None:
                try:
                    self.checkpointer.flush()  # the last completed epoch, for training.resume
                except Exception as ck_exc:  # never hide the interruption itself
                    print(f"layerlab: could not write the checkpoint: {ck_exc}", file=sys.stderr)
            self._log_error(f"interrupted ({exc or 'Ctrl-C'}) after {self.epochs_done} completed epoch(s); "
                            f"resume with: python runner.py {' '.join(self.ctx['overrides'])} training.resume={run_id}")
            raise
        except LayerlabError as exc:
            self._log_error(str(exc))
            raise
        except Exception as exc:
            self._log_error(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
            raise
        finally:
            self._track("wall time tag", lambda: mlflow.set_tag(f"{TAG}wall_time_s", f"{time.perf_counter() - t0:.2f}"))
            self._close(run_id, status)
            if result is not None:
                result.status = status
                print(self._final_line(result, exp_id), flush=True)

    # --------------------------------------------------------------- the steps
    def _experiment_id(self) -> str:
        name = str(self.cfg.tracking.experiment)
        env_id = os.environ.get(tracking.ENV_EXPERIMENT_ID)
        if env_id:  # created once by the sweep's parent process (avoids the creation race)
            return env_id
        return tracking.ensure_experiment(self.uri, name, select(self.cfg, "tracking.artifact_root", None))

    def _runs_of_this_config(self, exp_id: str, statuses: list[str]) -> list:
        """Runs of the experiment made with the same config (hash tag), newest first."""
        return tracking.find_runs(self.uri, exp_id, f"tags.`{TAG}config_hash` = '{self.hash}'", statuses=statuses)

    def _resume_target(self, exp_id: str):
        """(run to resume or None, checkpoint folder or None) from ``training.resume``."""
        want = select(self.cfg, "training.resume", None)
        if want in (None, False) or str(want).lower() in ("false", "null", "none"):
            return None, None
        import mlflow

        client = mlflow.MlflowClient(self.uri)
        if want is True or str(want).lower() == "true":
            runs = self._runs_of_this_config(exp_id, ["KILLED", "FAILED"])
            if not runs:
                raise ConfigError("no interrupted run of this config to resume", path="training.resume", value=True,
                                  fix="run without training.resume, or pass the run id: training.resume=<run id>")
            run = runs[0]
        else:
            try:
                run = client.get_run(str(want))
            except Exception:
                raise ConfigError("no such MLflow run", path="training.resume", value=want,
                                  fix="copy the run id from `mlflow ui` or from the message of the interrupted run") from None
        if run.data.tags.get(f"{TAG}config_hash") not in (None, self.hash):
            raise ConfigError(f"run {run.info.run_id} was made with another config (hash "
                              f"{run.data.tags.get(f'{TAG}config_hash')}, this one {self.hash})", path="training.resume",
                              value=str(want), fix="pass the same overrides as the interrupted run (its error.txt "
                                                   "has the exact command), plus training.resume")
        folder = Path(run.data.tags.get(f"{TAG}output_dir", "")) / "checkpoints"
        if not (folder / "last.keras").exists():
            raise ConfigError(f"run {run.info.run_id} has no checkpoint at {folder}", path="training.resume",
                              value=str(want), fix="resume on the machine where it ran, or start a new run")
        return run, folder

    def _start_run(self, exp_id: str, resume_run):
        import mlflow

        if resume_run is not None:
            run = mlflow.start_run(run_id=resume_run.info.run_id)
            mlflow.set_tags({f"{TAG}resumed": "true", f"{TAG}output_dir": str(self.out_dir)})
            return run
        cfg, ctx = self.cfg, self.ctx
        tags = {
            f"{TAG}role": "job",
            f"{TAG}model": str(cfg.model.name),
            f"{TAG}dataset": str(cfg.dataset.name),
            f"{TAG}overrides": tracking.redact(tracking.tags_json(ctx["overrides"])),
            f"{TAG}config_hash": self.hash,
            f"{TAG}output_dir": str(self.out_dir),
            **tracking.git_state(),
        }
        parent, sweep_id = os.environ.get(tracking.ENV_PARENT_RUN), os.environ.get(tracking.ENV_SWEEP_ID, "")
        if not parent and ctx["mode"] == "MULTIRUN" and ctx["sweep_dir"]:
            # A worker that did not inherit the launcher's environment (remote Ray node, sbatch --export=NONE).
            from experiments.sweeps.callback import find_parent

            found = find_parent(self.uri, exp_id, str(ctx["sweep_dir"]))
            if found is not None:
                parent, sweep_id = found.info.run_id, found.data.tags.get(f"{TAG}sweep_id", "")
        if parent:
            tags["mlflow.parentRunId"] = parent
            tags[f"{TAG}sweep_id"] = sweep_id
        if ctx["job_num"] is not None:
            tags[f"{TAG}job_num"] = str(ctx["job_num"])
        act = select(cfg, "model.activation", None)
        name = f"{cfg.model.name}-{act}-seed{cfg.seed}" if act else f"{cfg.model.name}-seed{cfg.seed}"
        if ctx["job_num"] is not None:
            name = f"#{ctx['job_num']} {name}"
        return mlflow.start_run(experiment_id=exp_id, run_name=name, tags=tags)

    def _train(self, run_id: str | None, checkpoint: Path | None) -> JobResult:
        import keras
        import mlflow
        import tensorflow as tf

        from experiments.models.builder import count_params, summary_text
        from experiments.data.loading import make_tf_dataset
        from experiments.tracking.sink import MetricSink
        from experiments.training.fit import compile_model, evaluate, fit_verbosity, make_callbacks, setup_runtime

        from experiments.training.distribute import make_strategy, shard_by_data

        cfg = self.cfg
        if checkpoint is None:
            self._log_params()
        self._log_config_files()
        setup_runtime(cfg)
        strategy = make_strategy(cfg)
        if strategy.num_replicas_in_sync > 1:
            print(f"layerlab: {type(strategy).__name__} with {strategy.num_replicas_in_sync} replicas; global batch "
                  f"{cfg.training.batch_size}", flush=True)
        initial_epoch = 0
        with strategy.scope():  # variables (model and optimizer) are created on every replica
            data, model = prepare(cfg)
            if checkpoint is not None:
                state = json.loads((checkpoint / "state.json").read_text())
                initial_epoch = int(state["epochs_done"])
                model = keras.models.load_model(checkpoint / "last.keras", safe_mode=True)
                print(f"layerlab: resuming run {run_id} after epoch {initial_epoch}", flush=True)
            else:
                compile_model(model, cfg)
        if checkpoint is None:
            counts = count_params(model)
            self._track("model params", lambda: mlflow.log_params({
                "n_params_total": counts["total"], "n_params_trainable": counts["trainable"],
                **{f"data.{k}": v for k, v in data.summary().items()}}))
            self._track("model summary", lambda: mlflow.log_text(summary_text(model), "model_summary.txt"))
        self.epochs_done = initial_epoch
        bs = int(cfg.training.batch_size)
        seed = int(cfg.seed)
        train_ds = shard_by_data(make_tf_dataset(*data.train, bs, shuffle=bool(select(cfg, "training.shuffle", True)),
                                                 seed=seed))
        val_ds = shard_by_data(make_tf_dataset(*data.val, bs, shuffle=False, seed=seed))
        test_ds = shard_by_data(make_tf_dataset(*data.test, bs, shuffle=False, seed=seed))

        if self.tracked:
            self.sink = MetricSink(mlflow.MlflowClient(self.uri), run_id, self.out_dir / "metrics.jsonl",
                                   retry_for_s=float(select(cfg, "tracking.retry_s", 30)))

        def on_epoch(metrics: dict, step: int) -> None:
            self.epochs_done = step + 1
            if self.sink is not None:
                self.sink(metrics, step)

        # A non-chief worker checkpoints into its own folder: two writers must not share one file.
        ck_dir = self.out_dir if self.tracked else self.out_dir / f"worker_{os.getpid()}"
        callbacks = make_callbacks(cfg, out_dir=ck_dir, sink=on_epoch, run_id=run_id)
        self.checkpointer = next((c for c in callbacks if hasattr(c, "flush")), None)
        from experiments.job.entry import StopRequest

        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3's fit cannot run under this strategy (see experiments/multi_worker.py).
            from experiments.training.multi_worker import MultiWorkerTrainer

            trainer = MultiWorkerTrainer(model, strategy, str(cfg.training.loss), list(cfg.training.metrics),
                                         model.optimizer, bs)
            history = trainer.fit(train_ds, val_ds, int(cfg.training.epochs), initial_epoch, callbacks)
            StopRequest.check()
            final = {**trainer.evaluate(train_ds, "train_"), **trainer.evaluate(test_ds, "test_")}
        else:
            history = model.fit(train_ds, validation_data=val_ds, epochs=int(cfg.training.epochs),
                                initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,  # tf.data shuffles
                                verbose=fit_verbosity(select(cfg, "training.verbose", "auto")))
            StopRequest.check()  # a signal during the last epoch's validation
            final = {**evaluate(model, train_ds, "train_"), **evaluate(model, test_ds, "test_")}
        final_step = self.epochs_done  # early stopping may end before training.epochs
        if self.sink is not None:
            self.sink(final, final_step)  # journaled like the epochs, so an offline run keeps them too
            self._log_outputs(model, data, history, bs)
        metrics = {k: float(v[-1]) for k, v in (history.history or {}).items() if v}
        return JobResult(status="FINISHED", run_id=run_id, metrics={**metrics, **final})

    # ------------------------------------------------------------- artifacts
    def _log_params(self) -> None:
        import mlflow

        params, notes = tracking.params_from_flat(flatten(resolved_container(self.cfg)))
        self._track("params", lambda: mlflow.log_params(params))
        if notes:
            self._track("param notes", lambda: mlflow.set_tag(f"{TAG}param_notes", "; ".join(notes)[:5000]))

    def _log_config_files(self) -> None:
        import mlflow

        text = OmegaConf.to_yaml(resolved_container(self.cfg), sort_keys=False)
        self._track("config.yaml", lambda: mlflow.log_text(tracking.redact(text), "config.yaml"))
        hydra_dir = self.out_dir / ".hydra"
        if hydra_dir.is_dir():
            for f in sorted(hydra_dir.glob("*.yaml")):  # redacted copies: overrides may hold credentials
                content = f.read_text()
                self._track(f".hydra/{f.name}", lambda c=content, n=f.name: mlflow.log_text(tracking.redact(c),
                                                                                          f".hydra/{n}"))

    def _log_outputs(self, model, data, history, batch_size: int) -> None:
        import mlflow
        import pandas as pd

        from experiments.analysis import run_plots as plots
        from experiments.training.fit import predict_classes

        cfg = self.cfg
        art = self.out_dir / "artifacts"
        art.mkdir(parents=True, exist_ok=True)
        hist = pd.DataFrame(history.history if history is not None else {})
        hist.index.name = "epoch"
        hist.to_csv(art / "history.csv")
        files = [art / "history.csv"]
        if select(cfg, "tracking.log_plots", True):
            metric = str(cfg.training.metrics[0]) if len(cfg.training.metrics) else "loss"
            plot_files = plots.plot_history(hist, art, metric)
            x_test, y_test = data.test
            y_pred = predict_classes(model, x_test, batch_size)
            plot_files.append(plots.plot_predictions(y_test, y_pred, art))
            k = max(int(data.num_classes), int(y_pred.max()) + 1)
            plot_files.append(plots.plot_confusion(plots.confusion_matrix(y_test, y_pred, k), art))
            for f in plot_files:
                self._track(f"plots/{f.name}", lambda f=f: mlflow.log_artifact(str(f), "plots"))
        self._track("history.csv", lambda: mlflow.log_artifact(str(files[0])))
        if select(cfg, "tracking.log_model", True):
            if self.offline_reason is None:
                self._track("model", lambda: self._log_model(model, data.test[0][:8]))
            if self.offline_reason is not None:  # keep the model for a later upload
                model.save(art / "model.keras")

    def _log_model(self, model, x_example) -> None:
        import keras
        import mlflow
        import tensorflow as tf
        from mlflow.models import infer_signature

        from experiments.training.fit import predict_proba

        signature = infer_signature(x_example, predict_proba(model, x_example, len(x_example)))
        # Explicit requirements: inference would import-scan for seconds and list only keras.
        info = mlflow.keras.log_model(model, name="model", signature=signature,
                                      pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"])
        # Load it with `import layers` first: the custom layers must be registered (safe mode).
        mlflow.set_tag(f"{TAG}model_uri", info.model_uri)

    def _log_error(self, text: str) -> None:
        import mlflow

        (self.out_dir / "error.txt").write_text(tracking.redact(text))
        self._track("error.txt", lambda: mlflow.log_text(tracking.redact(text), "error.txt"), best_effort=True)
        self._track("error tag", lambda: mlflow.set_tag(f"{TAG}error", tracking.redact(text.splitlines()[0])[:4000]),
                    best_effort=True)

    # ---------------------------------------------------- tracking resilience
    def _track(self, what: str, fn, best_effort: bool = False):
        """Call an MLflow logging function; if the server is gone, note it as pending instead."""
        if not self.tracked:
            return None
        if self.offline_reason is not None:
            self.pending.append(what)
            return None
        try:
            return fn()
        except Exception as exc:
            if self._server_down():
                self.offline_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self.pending.append(what)
                return None
            if best_effort:
                return None
            raise

    def _server_down(self) -> bool:
        if not self.uri.startswith(("http://", "https://")):
            return False
        try:
            tracking.check_store(self.uri, timeout_s=3)
        except TrackingError:
            return True
        return False

    def _close(self, run_id: str, status: str) -> None:
        """Flush metrics and end the run; or leave everything ready for a later upload."""
        import mlflow

        delivered = self.sink.close(timeout=float(select(self.cfg, "tracking.retry_s", 30)) + 30) if self.sink else True
        if not delivered and self.offline_reason is None:
            self.offline_reason = self.sink.last_error or "metrics could not be delivered"
        if self.offline_reason is None:
            try:
                mlflow.end_run(status=status)
                return
            except Exception as exc:
                if not self._server_down():
                    raise
                self.offline_reason = f"{type(exc).__name__}: {exc}"
        # The server is gone: forget the fluent run locally and leave an upload recipe.
        try:
            mlflow.tracking.fluent._active_run_stack.get().clear()  # noqa: SLF001 (no public API to drop it)
        except Exception:
            pass
        pending = {"run_id": run_id, "tracking_uri": tracking.redact(self.uri), "status": status,
                   "metrics_sent": self.sink.sent if self.sink else 0, "journal": "metrics.jsonl",
                   "artifacts": "artifacts", "reason": self.offline_reason, "pending": self.pending}
        (self.out_dir / "pending.json").write_text(json.dumps(pending, indent=2))
        print(f"layerlab: WARNING the tracking server {tracking.redact(self.uri)} stopped answering "
              f"({self.offline_reason}). Training went on; metrics, artifacts and the model are kept in "
              f"{self.out_dir}. Send them when the server is back: python -m experiments.upload {self.out_dir}",
              flush=True)

    def _final_line(self, result: JobResult, exp_id: str) -> str:
        keys = [k for k in ("val_sparse_categorical_accuracy", "test_sparse_categorical_accuracy", "test_loss")
                if k in result.metrics] or sorted(result.metrics)[:3]
        shown = " ".join(f"{k}={result.metrics[k]:.4f}" for k in keys)
        state = result.status + (" (tracking pending upload)" if self.offline_reason else "")
        return (f"layerlab: {state} {shown} | run {result.run_id} in experiment "
                f"{self.cfg.tracking.experiment!r} (id {exp_id}) | open with {tracking.open_hint(self.uri)}")
