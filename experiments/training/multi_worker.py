"""Training loop for ``training.strategy=multi_worker``.

Keras 3's ``model.fit`` fails under ``tf.distribute.MultiWorkerMirroredStrategy``
("Attempt to convert a value (PerReplica...)", keras-team/keras#20585, open
upstream; reproduced here with TF 2.21 / Keras 3.15 and the TensorFlow
tutorial's own example).  This loop does what ``fit``/``evaluate`` do for the
project's models, with the same callbacks, the same metric names and a
``History``-like result, so the rest of the job is unchanged.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class _History:
    def __init__(self):
        self.history: dict[str, list[float]] = {}

    def add(self, logs: dict) -> None:
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))


def _metric_objects(names) -> list:
    out = []
    for name in names:
        obj = keras.metrics.get(name)
        out.append(obj if isinstance(obj, keras.metrics.Metric) else keras.metrics.MeanMetricWrapper(obj, name=name))
    return out


class MultiWorkerTrainer:
    """Compiled-model equivalent of fit/evaluate for MultiWorkerMirroredStrategy.

    Args:
        model: the model, built inside ``strategy.scope()``.
        strategy: the ``MultiWorkerMirroredStrategy``.
        loss: a Keras loss name (``sparse_categorical_crossentropy``).
        metrics: Keras metric names.
        optimizer: a Keras optimizer made inside ``strategy.scope()``.
        global_batch: ``training.batch_size``, the batch over all replicas.
    """

    def __init__(self, model, strategy, loss: str, metrics, optimizer, global_batch: int):
        self.model, self.strategy, self.global_batch = model, strategy, int(global_batch)
        self.loss_fn = keras.losses.get(loss)  # per-example losses
        with strategy.scope():
            self.optimizer = optimizer
            self.metrics = _metric_objects(metrics)
        self._train_step = tf.function(self._train_step_impl)
        self._eval_step = tf.function(self._eval_step_impl)

    def _replica_train(self, x, y):
        with tf.GradientTape() as tape:
            pred = self.model(x, training=True)
            per_example = self.loss_fn(y, pred)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        for m in self.metrics:
            m.update_state(y, pred)
        # Report the true mean (sum and count): a last, partial batch must not shrink it.
        return tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)

    def _reduce(self, per_replica):
        total, count = per_replica
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, total, axis=None)
        count = self.strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None)
        return total, count

    def _train_step_impl(self, batch):
        return self._reduce(self.strategy.run(self._replica_train, args=batch))

    def _replica_eval(self, x, y):
        pred = self.model(x, training=False)
        per_example = self.loss_fn(y, pred)
        for m in self.metrics:
            m.update_state(y, pred)
        return tf.reduce_sum(per_example), tf.cast(tf.size(per_example), tf.float32)

    def _eval_step_impl(self, batch):
        return self._reduce(self.strategy.run(self._replica_eval, args=batch))

    def _results(self, prefix: str, mean_loss: float) -> dict[str, float]:
        logs = {f"{prefix}loss": mean_loss}
        for m in self.metrics:
            logs[f"{prefix}{m.name}"] = float(m.result())
            m.reset_state()
        return logs

    def evaluate(self, dataset, prefix: str = "") -> dict[str, float]:
        total, count = 0.0, 0.0
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            s, n = self._eval_step(batch)
            total, count = total + float(s), count + float(n)
        return self._results(prefix, total / max(count, 1.0))

    def fit(self, train_ds, val_ds, epochs: int, initial_epoch: int, callbacks) -> _History:
        history = _History()
        cbs = keras.callbacks.CallbackList(callbacks, model=self.model)
        cbs.on_train_begin()
        dist_train = self.strategy.experimental_distribute_dataset(train_ds)
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            total, count = 0.0, 0.0
            for step, batch in enumerate(dist_train):
                s, n = self._train_step(batch)
                total, count = total + float(s), count + float(n)
                cbs.on_train_batch_end(step, {"loss": total / max(count, 1.0)})
            logs = self._results("", total / max(count, 1.0))
            logs.update(self.evaluate(val_ds, prefix="val_"))
            cbs.on_epoch_end(epoch, logs)
            history.add(logs)
            print(f"Epoch {epoch + 1}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
            if getattr(self.model, "stop_training", False):
                break
        cbs.on_train_end()
        return history
