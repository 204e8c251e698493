"""The Keras callbacks of a job: epoch timing, NaN guard, stop on signal, checkpoints, pruning, metric logging."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import keras

from experiments.config.metrics import MetricSpec, default_mode
from experiments.config.schema import JobConfig
from experiments.errors import TrainingError
from experiments.training.checkpoint import Checkpointer
from experiments.training.interrupts import StopRequest
from experiments.training.progress_file import write_status


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
                path="optimizer.learning_rate",
                fix=(
                    "lower optimizer.learning_rate, check the data for NaN/inf values, or check that the last "
                    "layer fits the loss"
                ),
            )


class StopOnSignal(keras.callbacks.Callback):
    """Raises the pending Ctrl-C/SIGTERM (see :class:`~experiments.training.interrupts.StopRequest`) at a batch
    boundary."""

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


class ProgressFile(keras.callbacks.Callback):
    """After each epoch: the epoch and the judged metric's validation value into the sweep job's status file.

    Args:
        path: the job's status file (:func:`experiments.training.progress_file.status_path`).
        epochs: the epochs the job trains in all.
        monitor: the log key shown (the judged metric's validation key, e.g. ``val_sparse_categorical_accuracy``).
        pruned: returns the epoch an Optuna pruner stopped the trial at, or None.
    """

    def __init__(self, path: Path, epochs: int, monitor: str, pruned: Callable[[], int | None] = lambda: None):
        super().__init__()
        self.path, self.epochs, self.monitor, self.pruned = Path(path), int(epochs), monitor, pruned

    def on_train_begin(self, logs=None):
        write_status(self.path, epochs=self.epochs, metric=self.monitor)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        write_status(self.path, epoch=epoch + 1, value=None if value is None else float(value))

    def on_train_end(self, logs=None):
        if self.pruned():
            write_status(self.path, pruned=True)


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _monitor(chosen: str | None, metric: MetricSpec) -> tuple[str, str]:
    """(log key, mode) of a ``monitor`` setting (``training.checkpoint.monitor``, ...); null: the compared metric."""
    if not chosen:
        return metric.val, metric.mode
    return str(chosen), default_mode(str(chosen))


def make_callbacks(
    job: JobConfig, *, out_dir: Path, sink=None, run_id: str | None = None, progress: Path | None = None
) -> list:
    """The callbacks of a job: timing, NaN guard, checkpoints, early stopping, pruning, logging, sweep progress.

    Args:
        progress: the job's status file in its sweep's folder (a sweep job only,
            :func:`experiments.training.progress_file.status_path`); None outside a sweep.
    """
    metric = job.metric
    cbs: list = [EpochTimer(), NanGuard(), StopOnSignal()]
    ck, es = job.training.checkpoint, job.training.early_stopping
    if ck.enabled:
        monitor, mode = _monitor(ck.monitor, metric)
        cbs.append(
            Checkpointer(Path(out_dir) / "checkpoints", run_id, monitor=monitor, mode=mode, every_s=float(ck.every_s))
        )
    if es.enabled:
        monitor, mode = _monitor(es.monitor, metric)
        cbs.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=es.patience, restore_best_weights=es.restore_best_weights
            )
        )
    pruning = None
    if job.optuna is not None:  # a trial of hydra/sweeper=optuna: report each epoch, stop when pruned
        from experiments.training.pruning import OptunaPruning

        pruning = OptunaPruning(job.optuna.storage, job.optuna.study, job.optuna.trial_number, metric.val)
        cbs.append(pruning)
    if progress is not None:  # the sweep's live display reads it (experiments.sweeps.progress.display)
        cbs.append(
            ProgressFile(
                progress,
                job.training.epochs,
                metric.val,
                pruned=lambda: pruning.pruned_epoch if pruning is not None else None,
            )
        )
    if sink is not None:
        cbs.append(EpochLogger(sink))  # last, so it sees epoch_time_s added by EpochTimer
    return cbs
