"""The Keras callbacks of a job: epoch timing, NaN guard, stop on signal, checkpoints, pruning, metric logging."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import keras

from experiments.config.access import select
from experiments.config.metrics import MetricSpec, compared_metric, default_mode
from experiments.errors import TrainingError
from experiments.training.checkpoint import Checkpointer
from experiments.training.interrupts import StopRequest


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
    """Raises the pending Ctrl-C/SIGTERM (see :class:`~experiments.training.interrupts.StopRequest`) at a batch boundary."""

    def on_train_batch_end(self, batch, logs=None):
        StopRequest.check()

    on_test_batch_end = on_train_batch_end
    on_epoch_begin = on_train_batch_end


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


def _monitor(cfg, key: str, metric: MetricSpec) -> tuple[str, str]:
    """(log key, mode) that ``key`` (``training.checkpoint.monitor``, ...) names; null: the compared metric."""
    chosen = select(cfg, key, None)
    if not chosen:
        return metric.val, metric.mode
    return str(chosen), default_mode(str(chosen))


def make_callbacks(cfg, *, out_dir: Path, sink=None, run_id: str | None = None) -> list:
    """The callbacks of a job: timing, NaN guard, checkpoints, early stopping, logging."""
    metric = compared_metric(cfg)
    cbs: list = [EpochTimer(), NanGuard(), StopOnSignal()]
    if select(cfg, "training.checkpoint.enabled", False):
        monitor, mode = _monitor(cfg, "training.checkpoint.monitor", metric)
        cbs.append(Checkpointer(Path(out_dir) / "checkpoints", run_id, monitor=monitor, mode=mode,
                                every_s=float(select(cfg, "training.checkpoint.every_s", 30))))
    if select(cfg, "training.early_stopping.enabled", False):
        es = cfg.training.early_stopping
        monitor, mode = _monitor(cfg, "training.early_stopping.monitor", metric)
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=int(es.patience),
                                                 restore_best_weights=bool(es.restore_best_weights)))
    trial_id = select(cfg, "optuna.trial_id", None)
    if trial_id is not None:  # a trial of hydra/sweeper=optuna: report each epoch, stop when pruned
        from experiments.training.pruning import OptunaPruning

        cbs.append(OptunaPruning(str(cfg.optuna.storage), str(cfg.optuna.study), int(trial_id), metric.val))
    if sink is not None:
        cbs.append(EpochLogger(sink))  # last, so it sees epoch_time_s added by EpochTimer
    return cbs
