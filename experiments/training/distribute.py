"""``training.strategy``: where the model is built and trained (tf.distribute).

* ``default``: TensorFlow's default strategy (one device, or what TF picks).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local GPUs, or,
  without GPUs, over ``training.logical_cpus`` logical CPU devices (how the
  tests exercise it on a CPU-only machine).
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` from the
  ``TF_CONFIG`` environment variable; only the chief (worker 0) talks to MLflow.

``training.batch_size`` is always the *global* batch: each of N replicas
gets batch_size / N samples per step.
"""

from __future__ import annotations

import json
import os

from experiments.config.schema import TrainingSchema
from experiments.data.tfdata import with_same_batches
from experiments.errors import ConfigError


def configure_devices(training: TrainingSchema) -> None:
    """Split the CPU into logical devices when asked; must run before TensorFlow starts."""
    n = training.logical_cpus
    if not n:
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(n))
    except RuntimeError:
        # Already initialised (a reused sweep worker): keep what it has, and say so if it differs.
        have = len(tf.config.list_logical_devices("CPU"))
        if have != int(n):
            raise ConfigError(f"TensorFlow already started in this process with {have} logical CPU(s)",
                              path="training.logical_cpus", value=n,
                              fix="run this job in a fresh process (basic launcher, or one job per worker)") from None


def task_info() -> tuple[str, int]:
    """(task type, index) from ``TF_CONFIG``; ("worker", 0) when unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return "worker", 0
    try:
        task = json.loads(raw).get("task", {})
    except json.JSONDecodeError:
        raise ConfigError("TF_CONFIG is not valid JSON", path="training.strategy", value="multi_worker",
                          fix='set TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                              '"task": {"type": "worker", "index": 0}}\'') from None
    return str(task.get("type", "worker")), int(task.get("index", 0))


def is_chief(training: TrainingSchema) -> bool:
    """Whether this process logs to MLflow: always, except non-chief multi-worker tasks."""
    if training.strategy != "multi_worker":
        return True
    kind, index = task_info()
    return kind == "chief" or (kind == "worker" and index == 0)


def make_strategy(training: TrainingSchema):
    """The ``tf.distribute.Strategy`` for ``training.strategy``."""
    import tensorflow as tf

    name = training.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("multi_worker needs the TF_CONFIG environment variable (cluster and task)",
                              path="training.strategy", value=name,
                              fix="set TF_CONFIG on every worker (see docs/scaling.md), or use mirrored/default")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(
        "unknown strategy", path="training.strategy", value=name, fix="use default, mirrored or multi_worker"
    )


def shard_by_data(dataset):
    """In-memory datasets cannot be sharded by file: shard by element across workers."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return with_same_batches(dataset.with_options(options), dataset)  # one replica may still gather them in graph
