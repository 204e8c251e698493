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
from experiments.config.overrides import parse_overrides
from experiments.config.schema import SweepSchema, TrackingSchema


@dataclass(frozen=True)
class MultirunConfig:
    """A sweep's settings, typed.

    Args:
        sweep_dir: ``hydra.sweep.dir`` as given (relative paths stay relative: each job sees the same string).
        dry_run: a ``dry_run=true`` sweep.
        launcher: ``hydra.launcher`` (:class:`~experiments.config.launcher.LauncherSettings`).
        task_overrides: the sweep's own overrides (``hydra.overrides.task``).
        hydra_overrides: its overrides of Hydra itself (``hydra.overrides.hydra``: launcher, sweeper, folders).
        tracking, sweep: the groups, checked by the schema.
        metric: the judged metric.
        planned_jobs: how many jobs the sweep's overrides and ``hydra.sweeper.params`` make (the
            basic sweep, a rounds sweep's first round); None when not countable here (a search: its
            sweeper says, :meth:`experiments.sweeps.context.SweepContext.expect_jobs`).
    """

    sweep_dir: Path
    dry_run: bool
    launcher: LauncherSettings
    tracking: TrackingSchema
    sweep: SweepSchema
    metric: MetricSpec
    task_overrides: tuple[str, ...] = ()
    hydra_overrides: tuple[str, ...] = ()
    planned_jobs: int | None = None


def multirun_config(config: DictConfig) -> MultirunConfig:
    """Read the sweep's settings from the config Hydra hands ``on_multirun_start`` / the sweeper.

    Raises:
        ConfigError: a bad ``tracking.*`` or ``sweep.*`` value, or one that does not resolve.
    """
    task_overrides = tuple(str(o) for o in (select(config, "hydra.overrides.task", None) or []))
    search = "optuna" in str(select(config, "hydra.sweeper._target_", "")).lower()
    params = select(config, "hydra.sweeper.params", None)
    sweep = typed(SweepSchema, select(config, "sweep", None) or {}, "sweep")
    fused = (sweep.replicate_key, sweep.fuse_max) if sweep.fuse_replicates and not search else None
    return MultirunConfig(
        sweep_dir=Path(str(select(config, "hydra.sweep.dir", None) or "multirun")),
        dry_run=select(config, "dry_run", False) is True,
        launcher=launcher_settings(select(config, "hydra.launcher", None)),
        tracking=typed(TrackingSchema, select(config, "tracking", None) or {}, "tracking"),
        sweep=sweep,
        metric=compared_metric(config),
        task_overrides=task_overrides,
        hydra_overrides=tuple(str(o) for o in (select(config, "hydra.overrides.hydra", None) or [])),
        planned_jobs=None if search else count_jobs(task_overrides, dict(params) if params else {}, fused),
    )


def count_jobs(task_overrides, params: dict, fused: tuple[str, int | None] | None = None) -> int | None:
    """Jobs of a basic sweep: the product of each swept key's values (``hydra.sweeper.params``, the command
    line winning per key, as Hydra's basic sweeper merges them); None for a sweep it cannot list (``glob``).

    With ``fused=(replicate_key, fuse_max)`` (``sweep.fuse_replicates``) the replicates of a group are one job,
    or one per ``fuse_max`` of them (:func:`experiments.config.fusion.fuse_jobs`)."""
    from hydra.errors import HydraException

    by_key = {o.key: o for o in parse_overrides([*(f"{k}={v}" for k, v in params.items()), *task_overrides])}
    count = 1
    for key, override in by_key.items():
        if override.is_sweep:
            try:
                n = len(list(override.hydra.sweep_string_iterator()))
            except HydraException:  # interval() or glob(): no finite list here
                return None
            if fused is not None and key == fused[0]:
                n = -(-n // (fused[1] or n))  # ceil: fused jobs of at most fuse_max replicas
            count *= n
    return count
