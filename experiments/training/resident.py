"""Train steps on batches gathered inside the train graph from the split's resident tensors.

Keras' ``fit`` pulls every batch from a ``tf.data`` iterator: a pipeline
step (a gather, a function call, a prefetch thread waking up) per train step,
which on a small CPU competes with the step for the same cores. Here one graph
call runs up to ``steps_per_execution`` steps, each gathering its batch from
the resident arrays by the epoch's order of indices: the same batches
``experiments.data.make_tf_dataset`` would give, in the same order, with no
iterator per step. ``fit`` itself (its callbacks, history, validation,
progress bar) is Keras' own.
"""

from __future__ import annotations

from experiments.adapters.keras_internals import own_train_function


def applies(model, split) -> bool:
    """Whether a model's fit can gather its own batches: a dataset of ``make_tf_dataset``, one replica, graph mode."""
    return (split is not None and not model.run_eagerly
            and model.distribute_strategy.num_replicas_in_sync == 1)


class ResidentSteps:
    """``model.train_function`` for ``fit``: ``steps_per_execution`` steps per call on batches gathered in the graph.

    Args:
        model: the compiled, built model.
        split: :class:`experiments.data.tfdata.ResidentSplit` of the training dataset.
    """

    def __init__(self, model, split):
        import tensorflow as tf

        self.split = split
        self.steps = split.steps
        self.per_call = int(model.steps_per_execution)
        self._begin = 0
        self._order = None
        x, y, bs = split.x, split.y, split.batch_size

        def one_step(order, step):
            idx = order[step * bs:(step + 1) * bs]
            model.train_step((tf.gather(x, idx), tf.gather(y, idx)))

        if model.jit_compile:
            one_step = tf.function(one_step, jit_compile=True)

        @tf.function
        def run(order, begin, count):
            def body(i):
                one_step(order, begin + i)
                return (i + 1,)

            tf.while_loop(lambda i: i < count, body, (tf.constant(0, tf.int64),))
            return model.get_metrics_result()  # read after the loop: the last step's logs, as Keras returns them

        self._run = run

    def stand_in(self):
        """What ``fit`` iterates in place of the training dataset: the same number of batches, no work per batch
        (this train function never pulls from it)."""
        import tensorflow as tf

        return tf.data.Dataset.from_tensors((self.split.x[:1], self.split.y[:1])).repeat(self.steps)

    def __call__(self, iterator):
        import tensorflow as tf

        if self._begin == 0:
            self._order = next(iter(self.split.orders))  # the epoch's order: one tiny iteration per epoch
        count = min(self.per_call, self.steps - self._begin)
        logs = self._run(self._order, tf.constant(self._begin, tf.int64), tf.constant(count, tf.int64))
        self._begin = (self._begin + count) % self.steps
        return logs

    def fitting(self, model):
        """A context in which ``model.fit`` runs these steps."""
        return own_train_function(model, self)
