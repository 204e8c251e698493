"""The TensorFlow runtime of one job: devices, threads, seeds, determinism."""

from __future__ import annotations

import os
import sys
from typing import Any

import keras

from experiments.config.access import select
from experiments.training.distribute import configure_devices


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
    n_jobs = int(select(launcher, "n_jobs", -1) or -1)
    if n_jobs <= 0:  # joblib: -1 = all cores, -2 = all but one, ...
        n_jobs = max(1, cores + 1 + n_jobs)
    return max(1, cores // n_jobs)


def setup_runtime(cfg, launcher_threads: int | None = None) -> None:
    """Fresh Keras state, thread counts, seeds and (optionally) op determinism.

    Called at the start of every job: worker processes of the joblib launcher
    are reused across jobs, so each job clears the Keras session first.

    Args:
        cfg: the job config (``training.threads`` wins over ``launcher_threads``).
        launcher_threads: the share of the cores of one parallel job (:func:`worker_threads`).
    """
    import tensorflow as tf

    configure_devices(cfg)  # first: logical devices can only be set before TensorFlow starts
    threads = select(cfg, "training.threads", None) or launcher_threads
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(threads))))
        except RuntimeError:
            pass  # TF already started in this reused worker, by an earlier job with the same share
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(cfg.seed))
    if select(cfg, "training.deterministic", False):
        tf.config.experimental.enable_op_determinism()


def fit_verbosity(setting: Any) -> int:
    """``auto``: Keras' progress bar on a terminal, one line per epoch in logs and CI."""
    if setting in (0, 1, 2):
        return int(setting)
    return 1 if sys.stdout.isatty() else 2
