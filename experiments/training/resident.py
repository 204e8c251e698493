"""Train and validation steps on batches gathered inside the step's graph from the split's resident tensors.

Keras' ``fit`` pulls every batch from a ``tf.data`` iterator: a pipeline
step (a gather, a function call, a prefetch thread waking up) per train step,
which on a small CPU competes with the step for the same cores, and new
iterators every epoch. Here one graph call runs up to ``steps_per_execution``
steps, each gathering its batch from the resident arrays by the epoch's order
of indices (a slice for validation): the same batches
``experiments.data.make_tf_dataset`` would give, in the same order, with no
iterator per step. ``fit`` itself (its callbacks, history, validation,
progress bar) is Keras' own.
"""

from __future__ import annotations

import contextlib
import weakref

from experiments.adapters.keras_internals import KERAS_ITERATORS_PER_EPOCH, own_step_functions

# A model's steps, kept across its fit calls (as Keras keeps its train function): traced once per model.
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def applies(model, split) -> bool:
    """Whether a model's fit can gather its own batches: a dataset of ``make_tf_dataset``, TensorFlow's default
    strategy (a ``tf.distribute`` strategy runs its steps through ``strategy.run``), graph mode; TensorFlow's
    backend only (the steps are ``tf.function``s, and JAX/PyTorch models have no ``distribute_strategy``)."""
    import keras
    import tensorflow as tf

    return (
        keras.config.backend() == "tensorflow"
        and split is not None
        and not model.run_eagerly
        and not tf.distribute.has_strategy()
        and model.distribute_strategy is tf.distribute.get_strategy()
    )


class _Steps:
    """``model.train_function`` / ``test_function`` for ``fit``: ``steps_per_execution`` steps per call on
    batches gathered in the graph from ``split`` (:class:`experiments.data.tfdata.ResidentSplit`).

    Args:
        model: the compiled, built model.
        batch_size: samples per batch.
        train: train steps on the epoch's order (else test steps on contiguous slices).
    """

    def __init__(self, model, batch_size: int, train: bool):
        import tensorflow as tf

        self.split = None
        self.train = train
        self.batch_size = bs = int(batch_size)
        self.per_call = int(model.steps_per_execution)
        self._begin = self._epochs = 0
        self._order = None
        model_ref = weakref.ref(model)  # kept per model in a weak mapping: the value must not hold its key

        def one_step(x, y, order, step):
            if train:
                idx = order[step * bs : (step + 1) * bs]
                model_ref().train_step((tf.gather(x, idx), tf.gather(y, idx)))
            else:
                model_ref().test_step((x[step * bs : (step + 1) * bs], y[step * bs : (step + 1) * bs]))

        if model.jit_compile:
            one_step = tf.function(one_step, jit_compile=True)

        @tf.function
        def run(x, y, order, begin, count):
            def body(i):
                one_step(x, y, order, begin + i)
                return (i + 1,)

            tf.while_loop(lambda i: i < count, body, (tf.constant(0, tf.int64),))
            return model_ref().get_metrics_result()  # read after the loop: the last step's logs, as Keras returns them

        self._run = run

    def stand_in(self):
        """What ``fit`` iterates in place of the dataset: the same number of batches, no work per batch (these
        functions never pull from it)."""
        import tensorflow as tf

        return tf.data.Dataset.from_tensors((self.split.x[:1], self.split.y[:1])).repeat(self.split.steps)

    def start(self) -> None:
        """From the first batch of an epoch, as at the start of a fit."""
        self._begin = self._epochs = 0

    def __call__(self, iterator):
        import tensorflow as tf

        split = self.split
        if self._begin == 0 and self.train:
            for _ in range(KERAS_ITERATORS_PER_EPOCH - 1 if self._epochs else 0):
                iter(split.orders)  # the iterators Keras' fit would make and not use: the same order as its epoch's
            self._order = next(iter(split.orders))  # the epoch's order: one tiny iteration per epoch
            self._epochs += 1
        elif self._order is None:
            self._order = tf.zeros([0], tf.int64)  # test steps slice: one placeholder, traced once
        count = min(self.per_call, split.steps - self._begin)
        begin, count_t = tf.constant(self._begin, tf.int64), tf.constant(count, tf.int64)
        logs = self._run(split.x, split.y, self._order, begin, count_t)
        self._begin = (self._begin + count) % split.steps
        return logs


def _kept(model, split, train: bool) -> _Steps:
    kept = _KEPT.setdefault(model, {})
    steps = kept.get(train)
    if steps is None or steps.batch_size != split.batch_size or steps.per_call != int(model.steps_per_execution):
        steps = kept[train] = _Steps(model, split.batch_size, train)
    steps.split = split  # the arrays are arguments of the traced function: another split of their shapes, no trace
    steps.start()
    return steps


@contextlib.contextmanager
def resident_fit(model, train_split, val_split=None):
    """A context in which ``model.fit`` gathers its batches in the graph.

    Yields:
        ``(train, val)``: the datasets to hand to ``fit`` in place of the training and validation datasets
        (``val`` None when ``val_split`` is None or shuffled: Keras validates on its own iterator then).
    """
    train = _kept(model, train_split, True)
    val = None if val_split is None or val_split.shuffle else _kept(model, val_split, False)
    with own_step_functions(model, train=train, test=val):
        yield train.stand_in(), None if val is None else val.stand_in()
