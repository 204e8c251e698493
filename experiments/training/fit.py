"""Training: runtime set-up, compile from the config, callbacks, fit and evaluate."""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from experiments.config.schema import select
from experiments.errors import ConfigError, TrainingError


def setup_runtime(cfg) -> None:
    """Fresh Keras state, thread counts, seeds and (optionally) op determinism.

    Called at the start of every job: worker processes of the joblib launcher
    are reused across jobs, so each job clears the Keras session first.
    """
    import tensorflow as tf

    from experiments.training.distribute import configure_devices

    configure_devices(cfg)  # first: logical devices can only be set before TensorFlow starts
    threads = select(cfg, "training.threads", None) or _env_int("LAYERLAB_THREADS")
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(threads))))
        except RuntimeError:
            pass  # TF already initialised in this (reused) worker: the env-var setting applies
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(cfg.seed))
    if select(cfg, "training.deterministic", False):
        tf.config.experimental.enable_op_determinism()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None


def make_optimizer(cfg) -> keras.optimizers.Optimizer:
    """The optimizer named by ``optimizer.name`` with its learning rate and args."""
    name = str(cfg.optimizer.name)
    args = dict(select(cfg, "optimizer.args", {}) or {})
    known = {n: getattr(keras.optimizers, n) for n in dir(keras.optimizers)
             if isinstance(getattr(keras.optimizers, n), type) and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)}
    lookup = {n.lower(): n for n in known}
    if name.lower() not in lookup:
        close = difflib.get_close_matches(name.lower(), list(lookup), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(lookup[c]) for c in close)}?" if close else ""
        raise ConfigError(f"no Keras optimizer of that name{hint}", path="optimizer.name", value=name,
                          fix=f"use one of {', '.join(sorted(k for k in known if k not in ('Optimizer', 'LossScaleOptimizer')))}")
    try:
        return known[lookup[name.lower()]](learning_rate=float(cfg.optimizer.learning_rate), **args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the optimizer rejected its arguments ({exc})", path="optimizer.args", value=args,
                          fix="check the argument names against the Keras optimizer's documentation") from None


def compile_model(model: keras.Model, cfg) -> None:
    """``model.compile`` with the optimizer, loss and metrics of the config."""
    loss = str(cfg.training.loss)
    try:
        keras.losses.get(loss)
    except (ValueError, TypeError):
        raise ConfigError("is not a Keras loss", path="training.loss", value=loss,
                          fix="use e.g. sparse_categorical_crossentropy (integer labels) or binary_crossentropy") from None
    metrics = [str(m) for m in cfg.training.metrics]
    for i, m in enumerate(metrics):
        try:
            keras.metrics.get(m)
        except (ValueError, TypeError):
            raise ConfigError("is not a Keras metric", path=f"training.metrics.{i}", value=m,
                              fix="use e.g. sparse_categorical_accuracy or accuracy") from None
    jit = select(cfg, "training.jit_compile", False)
    model.compile(optimizer=make_optimizer(cfg), loss=loss, metrics=metrics,
                  jit_compile=jit if jit in (True, False, "auto") else False)


def fit_verbosity(setting: Any) -> int:
    """``auto``: Keras' progress bar on a terminal, one line per epoch in logs and CI."""
    if setting in (0, 1, 2):
        return int(setting)
    return 1 if sys.stdout.isatty() else 2


class EpochTimer(keras.callbacks.Callback):
    """Puts the wall time of each epoch (training + validation) into the logs as ``epoch_time_s``."""

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_time_s"] = time.perf_counter() - self._t0


class NanGuard(keras.callbacks.Callback):
    """Stops training on a NaN or infinite loss, naming the epoch and batch.

    Keras' ``TerminateOnNaN`` stops silently and the run would look
    FINISHED; raising makes the run FAILED with a precise message.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingError(
                f"the training loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}; "
                "training stopped instead of going on with garbage weights",
                path="optimizer.learning_rate", fix=(
                    "lower optimizer.learning_rate, check the data for NaN/inf values, or check that the last "
                    "layer fits the loss"))


class StopOnSignal(keras.callbacks.Callback):
    """Raises the pending Ctrl-C/SIGTERM (see :class:`experiments.job.entry.StopRequest`) at a batch boundary."""

    def on_train_batch_end(self, batch, logs=None):
        from experiments.job.entry import StopRequest

        StopRequest.check()

    on_test_batch_end = on_train_batch_end
    on_epoch_begin = on_train_batch_end


class Checkpointer(keras.callbacks.Callback):
    """Keeps the last completed epoch (for resume) and the best one, cheaply.

    Saving a ``.keras`` file after every epoch cost 40-60 ms per epoch here
    (BENCHMARKS.md), as much as the epoch itself.  Instead each epoch end takes
    an in-memory snapshot of the weights and optimizer state; ``last.keras``
    is written at most every ``every_s`` seconds, at the end of training and
    when the job is interrupted (:meth:`flush`), so what ``training.resume``
    finds is the last *completed* epoch.  The best weights (by ``monitor``)
    are kept in memory and written once, as ``best.keras``, at the end.

    Args:
        folder: where ``last.keras``, ``best.keras`` and ``state.json`` go.
        run_id: the MLflow run, recorded in ``state.json``.
        monitor: the log key that defines "best" (``val_loss``: lower is better,
            anything with ``acc`` in it: higher).
        every_s: seconds between two writes of ``last.keras`` (0: every epoch).
    """

    def __init__(self, folder: Path, run_id: str | None, monitor: str = "val_loss", every_s: float = 30.0):
        super().__init__()
        self.folder = Path(folder)
        self.run_id = run_id
        self.monitor = monitor
        self.every_s = float(every_s)
        self.higher_is_better = "acc" in monitor
        self._last = None  # (epochs_done, weights, optimizer variables)
        self._best = None  # (value, weights)
        self._saved_epochs = -1
        self._last_write = time.monotonic()

    def _snapshot(self):
        opt = getattr(self.model, "optimizer", None)
        opt_vars = [v.numpy() for v in opt.variables] if opt is not None else []
        return self.model.get_weights(), opt_vars

    def on_epoch_end(self, epoch, logs=None):
        weights, opt_vars = self._snapshot()
        self._last = (epoch + 1, weights, opt_vars)
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(float(value)):
            better = self._best is None or (float(value) > self._best[0] if self.higher_is_better
                                            else float(value) < self._best[0])
            if better:
                self._best = (float(value), weights)
        if time.monotonic() - self._last_write >= self.every_s:
            self.flush()

    def on_train_end(self, logs=None):
        self.flush()
        if self._best is not None:
            current = self.model.get_weights()
            self.model.set_weights(self._best[1])
            self._save("best.keras")
            self.model.set_weights(current)

    def flush(self) -> None:
        """Write the last completed epoch's snapshot as ``last.keras`` (+ ``state.json``)."""
        if self._last is None or self._last[0] == self._saved_epochs:
            return
        epochs_done, weights, opt_vars = self._last
        current = self._snapshot()
        self._restore(weights, opt_vars)
        try:
            self._save("last.keras")
        finally:
            self._restore(*current)
        (self.folder / "state.json").write_text(json.dumps({"epochs_done": epochs_done, "run_id": self.run_id}))
        self._saved_epochs = epochs_done
        self._last_write = time.monotonic()

    def _restore(self, weights, opt_vars) -> None:
        self.model.set_weights(weights)
        opt = getattr(self.model, "optimizer", None)
        if opt is not None:
            for var, value in zip(opt.variables, opt_vars):
                var.assign(value)

    def _save(self, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{name}.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.folder / name)  # atomic: a kill mid-save keeps the previous file


class EpochLogger(keras.callbacks.Callback):
    """Hands each epoch's logs to ``sink(metrics, step)``; the sink does the I/O off this thread."""

    def __init__(self, sink: Callable[[dict, int], None]):
        super().__init__()
        self.sink = sink

    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        self.sink(metrics, epoch)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def make_callbacks(cfg, *, out_dir: Path, sink=None, run_id: str | None = None) -> list:
    """The callbacks of a job: timing, NaN guard, checkpoints, early stopping, logging."""
    cbs: list = [EpochTimer(), NanGuard(), StopOnSignal()]
    if select(cfg, "training.checkpoint.enabled", False):
        cbs.append(Checkpointer(Path(out_dir) / "checkpoints", run_id,
                                monitor=str(select(cfg, "training.checkpoint.monitor", "val_loss")),
                                every_s=float(select(cfg, "training.checkpoint.every_s", 30))))
    if select(cfg, "training.early_stopping.enabled", False):
        es = cfg.training.early_stopping
        cbs.append(keras.callbacks.EarlyStopping(monitor=str(es.monitor), patience=int(es.patience),
                                                 restore_best_weights=bool(es.restore_best_weights)))
    if sink is not None:
        cbs.append(EpochLogger(sink))  # last, so it sees epoch_time_s added by EpochTimer
    return cbs


def evaluate(model: keras.Model, dataset, prefix: str) -> dict[str, float]:
    """``model.evaluate`` as ``{prefix_metric: value}`` (``test_loss``, ``test_sparse_categorical_accuracy``)."""
    values = model.evaluate(dataset, verbose=0, return_dict=True)
    return {f"{prefix}{k}": float(v) for k, v in values.items()}


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Batched forward passes in this process only.

    Not ``model.predict``: under a multi-worker strategy that runs collective
    ops, and only the chief is still there to make the plots.
    """
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def predict_classes(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    probs = predict_proba(model, x, batch_size)
    if probs.ndim == 2 and probs.shape[1] > 1:
        return np.argmax(probs, axis=1)
    return (np.ravel(probs) > 0.5).astype(int)
