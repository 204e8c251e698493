"""The config of a whole sweep, as its parent process reads it (the Hydra callback, the Optuna sweeper).

The parent sees the config Hydra composed before any job's sweep overrides:
the ``tracking`` and ``sweep`` groups are checked with the schema here (a bad
value stops the sweep before a job runs); every job still checks its whole
config itself (:func:`experiments.config.schema.validate`), so one bad job
fails alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from experiments.config.access import select
from experiments.config.fields import typed
from experiments.config.launcher import LauncherSettings, launcher_settings
from experiments.config.metrics import MetricSpec, compared_metric
from experiments.config.schema import SweepSchema, TrackingSchema


@dataclass(frozen=True)
class MultirunConfig:
    """A sweep's settings, typed.

    Args:
        sweep_dir: ``hydra.sweep.dir`` as given (relative paths stay relative: each job sees the same string).
        dry_run: a ``dry_run=true`` sweep.
        launcher: ``hydra.launcher`` (:class:`~experiments.config.launcher.LauncherSettings`).
        task_overrides: the sweep's own overrides (``hydra.overrides.task``).
        tracking, sweep: the groups, checked by the schema.
        metric: the judged metric.
    """

    sweep_dir: Path
    dry_run: bool
    launcher: LauncherSettings
    tracking: TrackingSchema
    sweep: SweepSchema
    metric: MetricSpec
    task_overrides: tuple[str, ...] = ()


def multirun_config(config: DictConfig) -> MultirunConfig:
    """Read the sweep's settings from the config Hydra hands ``on_multirun_start`` / the sweeper.

    Raises:
        ConfigError: a bad ``tracking.*`` or ``sweep.*`` value, or one that does not resolve.
    """
    return MultirunConfig(
        sweep_dir=Path(str(select(config, "hydra.sweep.dir", None) or "multirun")),
        dry_run=select(config, "dry_run", False) is True,
        launcher=launcher_settings(select(config, "hydra.launcher", None)),
        tracking=typed(TrackingSchema, select(config, "tracking", None) or {}, "tracking"),
        sweep=typed(SweepSchema, select(config, "sweep", None) or {}, "sweep"),
        metric=compared_metric(config),
        task_overrides=tuple(str(o) for o in (select(config, "hydra.overrides.task", None) or [])),
    )
