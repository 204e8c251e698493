"""The launcher of a sweep, read once: which one it is, how many workers it runs, how many threads each gets.

One rule each, used by the sweep callback (the parent), the job (its thread
share), the warm-up of joblib workers, the layerlab launcher and the Optuna
sweeper: nothing else compares ``_target_`` strings or turns ``n_jobs`` into
a count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, cast

from omegaconf import OmegaConf

from experiments.adapters.hydra_internals import BASIC_LAUNCHER

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
LAYERLAB_LAUNCHER = "hydra_plugins.layerlab_launcher.layerlab_launcher.LayerlabLauncher"
_KINDS = {BASIC_LAUNCHER: "basic", JOBLIB_LAUNCHER: "joblib", LAYERLAB_LAUNCHER: "layerlab"}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as ``taskset`` or a container sets it), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parallel_jobs(n_jobs: Any, n_tasks: int | None = None) -> int:
    """Worker processes for joblib's ``n_jobs`` convention: a positive number as is; -1 all cores, -2 all but
    one, ...; never more than ``n_tasks`` (when given) nor fewer than one."""
    n = int(n_jobs or -1)
    n = n if n > 0 else max(1, available_cores() + 1 + n)
    return max(1, min(n, n_tasks)) if n_tasks is not None else n


def threads_per_worker(workers: int) -> int:
    """CPU threads one of ``workers`` parallel workers may use, so that together they do not oversubscribe."""
    return max(1, available_cores() // max(1, workers))


@dataclass(frozen=True)
class LauncherSettings:
    """The ``hydra.launcher`` node of a run, typed.

    Args:
        target: its ``_target_`` ("" outside Hydra).
        n_jobs: its ``n_jobs`` (None when it has none: basic, Ray, SLURM).
        settings: the whole node as plain values (what the joblib warm-up hands ``joblib.Parallel``).
    """

    target: str = ""
    n_jobs: int | None = None
    settings: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``basic``, ``joblib``, ``layerlab``, ``none`` (outside Hydra) or ``other`` (Ray, submitit, ...)."""
        return _KINDS.get(self.target, "other" if self.target else "none")

    def workers(self, n_tasks: int | None = None) -> int:
        """How many jobs run at once (:func:`parallel_jobs` of ``n_jobs``; 1 for a launcher without one)."""
        n_jobs = self.n_jobs
        if n_jobs is None:  # the joblib and layerlab launchers' own default is -1 (all cores)
            n_jobs = -1 if self.kind in ("joblib", "layerlab") else 1
        return parallel_jobs(n_jobs, n_tasks)

    def threads_per_job(self) -> int | None:
        """TensorFlow threads of one job: its worker's share of the cores under the joblib launcher; None
        (TensorFlow's default, all cores) elsewhere (the layerlab launcher sets it in its workers' environment)."""
        return threads_per_worker(self.workers()) if self.kind == "joblib" else None


def launcher_settings(node: Any) -> LauncherSettings:
    """The :class:`LauncherSettings` of a ``hydra.launcher`` node (None: outside Hydra).

    Only the joblib launcher's node is resolved whole (the warm-up passes it on); other launchers' nodes may
    hold interpolations that resolve only in their workers (Ray, submitit), so only ``_target_`` and
    ``n_jobs`` are read from them.
    """
    if node is None:
        return LauncherSettings()
    target = str(node.get("_target_") or "")
    n_jobs = node.get("n_jobs")
    settings: dict = {}
    if target == JOBLIB_LAUNCHER:
        settings = cast(dict, OmegaConf.to_container(node, resolve=True)) if OmegaConf.is_config(node) else dict(node)
    return LauncherSettings(target=target, n_jobs=int(n_jobs) if n_jobs is not None else None, settings=settings)
