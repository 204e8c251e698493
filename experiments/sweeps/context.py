"""The sweep running in this process, as one object handed to whoever takes part in it.

:class:`SweepContext` holds the active sweep (its :class:`~experiments.sweeps.state.SweepState`:
store, experiment, parent run, sweep folder and so its launch ledger), the
sweep's launcher settings, the layerlab launcher's worker processes, and
whether a sweep ever ran in this process.  The
Hydra callback (:mod:`experiments.sweeps.callback`) opens and closes it; the
launcher plugin (``hydra_plugins/layerlab_launcher``: its workers, closing the
run of a job whose worker died), the search sweeper (``hydra_plugins/layerlab_optuna``: the
study's parent run) and ``experiments.cli`` (may the process skip its
teardown?) read it with :func:`current_sweep`; nobody reads module globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.config.launcher import LauncherSettings
from experiments.launching.pool import WorkerPool
from experiments.sweeps.state import SweepState


@dataclass
class SweepContext:
    """The sweep of this process.

    Args:
        state: the active sweep, from ``on_multirun_start`` until it is finalised (None before and after).
        launcher: the launcher of the last sweep started here.
        ever_started: a sweep ran in this process (its launcher may still own worker processes).
        progress: the active sweep's display (:class:`~experiments.sweeps.progress.display.SweepProgress`), or None.
        workers: the worker processes of a layerlab-launcher sweep (:class:`~experiments.launching.pool.WorkerPool`),
            started by the callback, used by the launcher for every batch, closed when the sweep ends; else None.
    """

    state: SweepState | None = None
    launcher: LauncherSettings = field(default_factory=LauncherSettings)
    ever_started: bool = False
    progress: Any = None
    workers: WorkerPool | None = None

    @property
    def parent_run_id(self) -> str | None:
        """The active sweep's parent run (None: no sweep, or a dry run)."""
        return self.state.parent_run_id if self.state is not None else None

    @property
    def ledger_dir(self) -> Path | None:
        """The folder of the active sweep's launch ledger (:mod:`experiments.launching.ledger`)."""
        return Path(self.state.sweep_dir) if self.state is not None else None

    def begin(self, launcher: LauncherSettings) -> None:
        """Called by the callback first thing in ``on_multirun_start`` (before the parent run exists)."""
        self.launcher, self.ever_started = launcher, True

    def activate(self, state: SweepState) -> None:
        """Called by the callback once the sweep's parent run is open."""
        self.state = state

    def expect_jobs(self, jobs: int) -> None:
        """A sweeper tells the display how many jobs it will run (an Optuna search: its trials)."""
        if self.progress is not None:
            self.progress.expect(jobs)

    def stop_progress(self) -> None:
        """The display ends (before the sweep's summary is printed); a no-op when none runs."""
        progress, self.progress = self.progress, None
        if progress is not None:
            progress.stop()

    def release_workers(self, wait: bool = True) -> bool:
        """The sweep is over: its launcher workers stop (``wait``: and are gone); True when none is left."""
        if self.workers is None:
            return True
        if not wait:
            self.workers.tell_all_stop()
            return False
        return self.workers.close()

    def take(self) -> SweepState | None:
        """The active sweep, which stops being active (finalised once, by whoever takes it)."""
        state, self.state = self.state, None
        return state


_CURRENT = SweepContext()


def current_sweep() -> SweepContext:
    """This process's :class:`SweepContext` (the same object for its whole life)."""
    return _CURRENT
