"""The Hydra side of a job: its output folder, overrides, job number, sweep folder and launcher."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from experiments.config.launcher import LauncherSettings, launcher_settings
from experiments.training.progress_file import status_path

HIDDEN_PREFIX = "+optuna."  # overrides the Optuna sweeper adds to each trial (experiments.training.pruning)


@dataclass
class JobContext:
    """What Hydra knows about the current job (defaults outside Hydra: tests, notebooks).

    Args:
        output_dir: Hydra's output folder of the job (None outside Hydra).
        overrides: the job's command-line overrides, as typed.
        job_num: the job's number in a sweep (None for a single run).
        mode: ``RUN`` or ``MULTIRUN``.
        sweep_dir: ``hydra.sweep.dir`` as this job sees it (how it finds its sweep's parent run).
        launcher: the job's launcher (:class:`~experiments.config.launcher.LauncherSettings`: its thread share).
    """

    output_dir: str | None = None
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    mode: str = "RUN"
    sweep_dir: str | None = None
    launcher: LauncherSettings = field(default_factory=LauncherSettings)

    @property
    def in_sweep(self) -> bool:
        return self.mode == "MULTIRUN"

    @property
    def progress_path(self) -> Path | None:
        """The status file this sweep job publishes for the sweep's live display; None outside a sweep."""
        if not self.in_sweep or self.sweep_dir is None or self.job_num is None:
            return None
        return status_path(self.sweep_dir, self.job_num)


def hydra_context() -> JobContext:
    """The :class:`JobContext` of the running Hydra job, or an empty one outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return JobContext()
    hc = HydraConfig.get()
    mode = str(hc.mode).split(".")[-1] if hc.mode is not None else "RUN"
    multirun = mode == "MULTIRUN"
    # The hidden +optuna.* keys (study, storage, trial) are how the search reaches the job; they are not
    # part of the job's own config (run names, the rerun command, the overrides tag).
    overrides = [o for o in hc.overrides.task if not str(o).startswith(HIDDEN_PREFIX)]
    return JobContext(
        output_dir=hc.runtime.output_dir,
        overrides=overrides,
        job_num=hc.job.num if multirun else None,
        mode=mode,
        sweep_dir=str(hc.sweep.dir) if multirun else None,
        launcher=launcher_settings(hc.launcher),
    )
