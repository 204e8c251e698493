"""Checkpoints of a job: the last completed epoch (for ``training.resume``) and the best one."""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from pathlib import Path

import keras

from experiments.errors import ConfigError


class Checkpointer(keras.callbacks.Callback):
    """Keeps the last completed epoch (for resume) and the best one, cheaply.

    Saving a ``.keras`` file after every epoch cost as much as a small epoch
    itself (BENCHMARKS.md, section 1).  Instead each epoch end takes
    an in-memory snapshot of the weights and optimizer state; ``last.keras``
    is written at most every ``every_s`` seconds, at the end of training and
    when the job is interrupted (:meth:`flush`), so what ``training.resume``
    finds is the last *completed* epoch.  The best weights (by ``monitor``)
    are kept in memory and written once, as ``best.keras``, at the end.

    Args:
        folder: where ``last.keras``, ``best.keras`` and ``state.json`` go.
        run_id: the MLflow run, recorded in ``state.json``.
        monitor: the log key that defines "best".
        mode: ``"max"`` when a higher ``monitor`` is better, ``"min"`` when lower is.
        every_s: seconds between two writes of ``last.keras`` (0: every epoch).
    """

    def __init__(
        self, folder: Path, run_id: str | None, monitor: str = "val_loss", mode: str = "min", every_s: float = 30.0
    ):
        super().__init__()
        self.folder = Path(folder)
        self.run_id = run_id
        self.monitor = monitor
        self.every_s = float(every_s)
        self.higher_is_better = mode == "max"
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
            better = self._best is None or (
                float(value) > self._best[0] if self.higher_is_better else float(value) < self._best[0]
            )
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


def _damage(file: Path) -> str | None:
    """What is wrong with a ``.keras`` file (a zip archive), or None if it reads back whole."""
    if not file.is_file():
        return "it does not exist"
    try:
        with zipfile.ZipFile(file) as archive:
            bad = archive.testzip()  # reads every member: truncation and flipped bytes fail here
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"it is not a complete .keras archive ({type(exc).__name__}: {exc})"
    if bad is not None:
        return f"its member {bad} is corrupt (CRC mismatch)"
    if "config.json" not in names:
        return "it has no config.json (not a Keras model file)"
    return None


def _damaged_error(folder: Path, file: Path, why: str) -> ConfigError:
    best = folder / "best.keras"
    choices = "start over (run without training.resume)"
    if file.name != "best.keras" and _damage(best) is None:
        choices += (
            f", or resume from the best weights, which are intact: cp {best} {file} (training then "
            f"continues after the epoch count in {folder / 'state.json'}, from the best epoch's weights)"
        )
    return ConfigError(
        f"the checkpoint {file} is damaged: {why}",
        path="training.resume",
        fix=f"{choices}; a damaged file is usually a disk that filled up or a copy cut short",
    )


def check_checkpoint(folder: Path) -> int:
    """The epochs done of the checkpoint in ``folder``; a clear :class:`ConfigError` if it is damaged."""
    folder = Path(folder)
    file = folder / "last.keras"
    why = _damage(file)
    if why is not None:
        raise _damaged_error(folder, file, why)
    state = folder / "state.json"
    try:
        return int(json.loads(state.read_text())["epochs_done"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the checkpoint state {state} is missing or damaged ({type(exc).__name__}: {exc})",
            path="training.resume",
            fix="start over (run without training.resume), or write the number of completed epochs "
            'there: {"epochs_done": N}',
        ) from None


def load_checkpoint(folder: Path):
    """(epochs done, compiled model) from ``folder/last.keras``; never a Keras traceback.

    A truncated or corrupt file, or one Keras cannot rebuild, raises a
    :class:`~experiments.errors.ConfigError` naming the file and the choices:
    start over, or resume from ``best.keras`` when that one is intact.
    """
    folder = Path(folder)
    epochs_done = check_checkpoint(folder)
    file = folder / "last.keras"
    try:
        model = keras.models.load_model(file, safe_mode=True)
    except Exception as exc:
        raise _damaged_error(
            folder,
            file,
            f"Keras cannot load it ({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''})",
        ) from None
    return epochs_done, model
