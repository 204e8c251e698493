"""Warm workers: a joblib sweep's worker processes start importing TensorFlow while the parent sets up.

Hydra's joblib launcher starts its loky workers only when it launches the
first batch, after the sweep's parent has imported MLflow, opened the store
and created its parent run; each worker then spends seconds importing
TensorFlow, Keras and MLflow before its first job can start (profiled in
BENCHMARKS.md, section 2b). Without a warm-up the two waits add up.

:func:`warm_workers` runs, in a thread of the parent, a ``joblib.Parallel``
call with the launcher's own settings whose tasks import what a job
imports. Joblib keeps one reusable loky executor per process and hands it to
the next ``Parallel`` call made with the same settings: the launcher's call
then finds the workers started and warm. Nothing else is shared: the
workers hold no job state, and a warm-up that fails (or a launcher setting
that makes joblib start new workers) only costs the time it took.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from experiments.adapters.hydra_internals import joblib_parallel_kwargs
from experiments.config.launcher import JOBLIB_LAUNCHER, LauncherSettings, launcher_settings, parallel_jobs

log = logging.getLogger(__name__)

__all__ = ["JOBLIB_LAUNCHER", "joblib_settings", "warm_workers", "release_joblib_workers"]


def _import_job_modules() -> int:
    """In a worker: what a job imports (TensorFlow, Keras, MLflow, ...), quietly; returns the worker's pid."""
    from experiments.process import configure_process, exit_without_teardown_at_exit

    configure_process()  # the worker's TensorFlow import is filtered like the parent's
    import experiments.job.entry  # noqa: F401  (the job's whole import chain)

    exit_without_teardown_at_exit()  # registered after TensorFlow's own exit handlers, so it runs first
    return os.getpid()


def joblib_settings(launcher: LauncherSettings | Any) -> dict | None:
    """The keyword arguments Hydra's joblib launcher gives ``joblib.Parallel``, or None for another launcher.

    Args:
        launcher: the sweep's :class:`~experiments.config.launcher.LauncherSettings` (or its ``hydra.launcher`` node).
    """
    if not isinstance(launcher, LauncherSettings):
        launcher = launcher_settings(launcher)
    if launcher.kind != "joblib":
        return None
    return joblib_parallel_kwargs(launcher.settings)


class WarmUp:
    """The warm-up of a joblib sweep's workers, running in a daemon thread of the parent."""

    def __init__(self, settings: dict):
        from joblib import Parallel, delayed

        workers = parallel_jobs(settings.get("n_jobs"))
        self.pids: list[int] = []

        def run() -> None:
            try:
                self.pids = list(Parallel(**settings)(delayed(_import_job_modules)() for _ in range(workers)))
            except Exception as exc:  # never fatal: the launcher starts its workers itself
                log.debug("joblib workers not warmed up: %r", exc)

        self.thread = threading.Thread(target=run, name="layerlab-warm-workers", daemon=True)
        self.thread.start()

    def wait(self) -> None:
        """Wait until the workers are warm (before the launcher's own ``Parallel`` call uses them).

        No time limit: two ``Parallel`` calls must not share the executor at once, and a
        worker that hangs while importing would hang the launcher's call just the same.
        """
        self.thread.join()


def warm_workers(launcher: LauncherSettings | Any) -> WarmUp | None:
    """Start warming the workers of a joblib sweep; None for any other launcher.

    Args:
        launcher: the sweep's :class:`~experiments.config.launcher.LauncherSettings` (or its ``hydra.launcher`` node).
    """
    settings = joblib_settings(launcher)
    return WarmUp(settings) if settings is not None else None


def release_joblib_workers() -> None:
    """Shut down this process's joblib workers (idle once the sweep is over) and wait until they are gone."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True)
