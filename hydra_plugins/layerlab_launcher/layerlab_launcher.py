"""``hydra/launcher=layerlab``: N long-lived worker processes; a worker that dies is one failed job.

The stock joblib launcher (loky) cancels the whole batch when one worker is
killed (``TerminatedWorkerError``: the jobs on the other workers and those not
yet started are lost).  This launcher keeps ``n_jobs`` spawned worker
processes (each imports TensorFlow once, while the sweep's parent sets up, and
runs jobs one after the other, for every batch of the sweep: see
:mod:`experiments.launching.pool`), hands them one job at a time, and watches their exit codes: when a worker dies
(SIGKILL, the kernel's out-of-memory killer, a segfault), its job's MLflow
run is closed FAILED with the reason in words, a replacement worker is
started, and the other jobs run to the end.  See ``_pool.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LayerlabLauncher(Launcher):
    """Args (``hydra.launcher.*``): ``n_jobs`` (workers; -1 all cores, -2 all but one, ...)."""

    def __init__(self, n_jobs: int = -1, **kwargs: Any) -> None:
        self.n_jobs = int(n_jobs)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.layerlab_launcher import _pool

        return _pool.launch(self, job_overrides, initial_job_idx)
