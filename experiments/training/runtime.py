"""The TensorFlow runtime of one job: devices, threads, seeds, determinism."""

from __future__ import annotations

import sys
from typing import Any

import keras

from experiments.config.launcher import available_cores
from experiments.config.schema import JobConfig
from experiments.process import freeze_imported_heap
from experiments.training.distribute import configure_devices
from experiments.training.precision import apply_precision


def setup_runtime(job: JobConfig, launcher_threads: int | None = None, side_by_side: bool = False) -> None:
    """Fresh Keras state, thread counts, seeds and (optionally) op determinism.

    Called at the start of every job: worker processes of the joblib launcher
    are reused across jobs, so each job clears the Keras session first.

    Args:
        job: the job's typed config (``training.threads`` wins over ``launcher_threads``).
        launcher_threads: the share of the cores of one parallel job
            (:meth:`experiments.config.launcher.LauncherSettings.threads_per_job`).
        side_by_side: the model is independent branches (fused replicas, ``sweep.fuse_layout=branches``): one
            thread per op and as many ops at once as there are threads, so each core runs its own replica's
            small products instead of every core splitting each product.
    """
    import tensorflow as tf

    configure_devices(job.training)  # first: logical devices can only be set before TensorFlow starts
    threads = job.training.threads or launcher_threads or (cores_of_this_process() if side_by_side else None)
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1 if side_by_side else int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(
                int(threads) if side_by_side else max(1, min(2, int(threads)))
            )
        except RuntimeError:
            pass  # TF already started in this process (a reused worker, an earlier job): its settings stay
    # Grappler's remapper (with oneDNN on CPU) fuses an Add followed by an activation (ResidualDense's
    # act(x + dense(...))) into a node without an op name; TensorFlow's MLIR pass (tfg_optimizer_hook) then
    # rejects the graph and logs an E0000 line per traced function before going on without it. Without the
    # remapper the graph stays valid and the run is quiet; every other error still shows.
    tf.config.optimizer.set_experimental_options({"remapping": False})
    freeze_imported_heap()  # first job of this process: later collections skip TensorFlow's own objects
    keras.backend.clear_session()  # frees the previous job's model in a reused worker
    apply_precision(job.training)  # after clear_session, which resets the dtype policy
    keras.utils.set_random_seed(job.seed)
    if job.training.deterministic:
        tf.config.experimental.enable_op_determinism()


def cores_of_this_process() -> int:
    """The cores this process may use: a launcher worker's share (``TF_NUM_INTRAOP_THREADS``, set by
    :func:`experiments.process.set_worker_threads`), else every core it may run on."""
    import os

    share = os.environ.get("TF_NUM_INTRAOP_THREADS", "")
    if share.isdigit() and int(share) > 0:
        return int(share)
    return available_cores()


def fit_verbosity(setting: Any, in_sweep: bool = False) -> int:
    """``auto``: Keras' progress bar on a terminal, one line per epoch in logs and CI; nothing in a sweep's job
    (the sweep's live display shows its epochs, MLflow has every value; ``training.verbose=2`` brings the lines
    back)."""
    if setting in (0, 1, 2):
        return int(setting)
    if in_sweep:
        return 0
    return 1 if sys.stdout.isatty() else 2
