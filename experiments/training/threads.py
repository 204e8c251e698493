"""How many CPU threads one job may use when a launcher runs several at once (no TensorFlow import)."""

from __future__ import annotations

import os
from typing import Any

from experiments.config.access import select


def worker_threads(launcher: Any) -> int | None:
    """CPU threads per job under a parallel launcher, so parallel jobs do not oversubscribe the cores.

    Args:
        launcher: the ``hydra.launcher`` node of the job's Hydra config (None outside Hydra).

    Returns:
        cores // parallel jobs for the joblib launcher, else None (TensorFlow's default: all cores).
    """
    target = str(select(launcher, "_target_", "") or "") if launcher is not None else ""
    if "joblib" not in target.lower():
        return None
    cores = os.cpu_count() or 1
    return max(1, cores // parallel_jobs(select(launcher, "n_jobs", -1)))


def parallel_jobs(n_jobs: Any) -> int:
    """Worker processes for joblib's ``n_jobs``: a positive number as is; -1 all cores, -2 all but one, ..."""
    n = int(n_jobs or -1)
    return n if n > 0 else max(1, (os.cpu_count() or 1) + 1 + n)
