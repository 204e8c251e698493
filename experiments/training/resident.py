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

A fused model (:mod:`experiments.training.fused`) trains R replicas on R
splits (each replica's seed splits and shuffles the data its own way): its
steps gather one batch per replica, each by that replica's order, and hand
the model ``((x_0, ..., x_R-1), (y_0, ..., y_R-1))`` as ``Dataset.zip`` of the
replicas' datasets would: one input pipeline for the group, inside its graph.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence

from experiments.adapters.keras_internals import KERAS_ITERATORS_PER_EPOCH, own_step_functions

# A model's steps, kept across its fit calls (as Keras keeps its train function): traced once per model.
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _as_splits(split) -> tuple[list, bool]:
    """``(splits, fused)``: one split as a list of one, or a fused model's sequence of splits (one per replica)."""
    fused = isinstance(split, Sequence)
    return (list(split) if fused else [split]), fused


def _model_input(pairs: list, fused: bool):
    """The ``(x, y)`` a model takes from one ``(x, y)`` per split: ``((x_0, ...), (y_0, ...))`` for a fused model,
    as ``Dataset.zip`` of the replicas' datasets gives it; the one pair otherwise."""
    return (tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)) if fused else pairs[0]


def applies(model, split) -> bool:
    """Whether a model's fit can gather its own batches: a dataset of ``make_tf_dataset`` (for a fused model, one
    per replica, all with as many batches), TensorFlow's default strategy (a ``tf.distribute`` strategy runs its
    steps through ``strategy.run``), graph mode; TensorFlow's backend only (the steps are ``tf.function``s, and
    JAX/PyTorch models have no ``distribute_strategy``)."""
    import keras
    import tensorflow as tf

    splits, _ = _as_splits(split)
    return (
        keras.config.backend() == "tensorflow"
        and bool(splits)
        and all(s is not None for s in splits)
        and len({(s.steps, s.batch_size, s.shuffle) for s in splits}) == 1
        and not model.run_eagerly
        and not tf.distribute.has_strategy()
        and model.distribute_strategy is tf.distribute.get_strategy()
    )


class _Steps:
    """``model.train_function`` / ``test_function`` for ``fit``: ``steps_per_execution`` steps per call on
    batches gathered in the graph from the resident splits (:class:`experiments.data.tfdata.ResidentSplit`).

    Args:
        model: the compiled, built model.
        batch_size: samples per batch.
        train: train steps on the epoch's order (else test steps on contiguous slices).
        fused: the model takes one batch per split as ``((x_0, ...), (y_0, ...))`` (else one split, ``(x, y)``).
    """

    def __init__(self, model, batch_size: int, train: bool, fused: bool = False):
        import tensorflow as tf

        self.splits: list = []
        self.train, self.fused = train, fused
        self.batch_size = bs = int(batch_size)
        self.per_call = int(model.steps_per_execution)
        self._begin = self._epochs = 0
        self._orders: tuple | None = None
        model_ref = weakref.ref(model)  # kept per model in a weak mapping: the value must not hold its key

        def one_step(xs, ys, orders, step):
            window = slice(step * bs, (step + 1) * bs)
            if train:
                pairs = [(tf.gather(x, o[window]), tf.gather(y, o[window])) for x, y, o in zip(xs, ys, orders)]
                model_ref().train_step(_model_input(pairs, fused))
            else:
                model_ref().test_step(_model_input([(x[window], y[window]) for x, y in zip(xs, ys)], fused))

        if model.jit_compile:
            one_step = tf.function(one_step, jit_compile=True, autograph=False)

        def run(xs, ys, orders, begin, count):
            def body(i):
                one_step(xs, ys, orders, begin + i)
                return (i + 1,)

            tf.while_loop(lambda i: i < count, body, (tf.constant(0, tf.int64),))
            return model_ref().get_metrics_result()  # read after the loop: the last step's logs, as Keras returns them

        self._python_run = run
        self._run = None  # traced at the first call, for splits of any length (validation, train, test: one trace)

    @property
    def steps(self) -> int:
        return self.splits[0].steps

    def stand_in(self):
        """What ``fit`` iterates in place of the dataset: the same number of batches, no work per batch (these
        functions never pull from it)."""
        import tensorflow as tf

        element = _model_input([(s.x[:1], s.y[:1]) for s in self.splits], self.fused)
        return tf.data.Dataset.from_tensors(element).repeat(self.steps)

    def start(self) -> None:
        """From the first batch of an epoch, as at the start of a fit."""
        self._begin = self._epochs = 0

    def __call__(self, iterator):
        import tensorflow as tf

        splits = self.splits
        if self._begin == 0 and self.train:
            for split in (s for s in splits if s.shuffle):  # Dataset.zip iterates each replica's dataset per epoch
                for _ in range(KERAS_ITERATORS_PER_EPOCH - 1 if self._epochs else 0):
                    iter(split.draws)  # the iterators Keras' fit would make and not use: the same draws as its epoch's
            self._orders = tuple(  # the epoch's orders
                s.order(next(iter(s.draws))) if s.shuffle else tf.range(s.x.shape[0], dtype=tf.int64) for s in splits
            )
            self._epochs += 1
        elif self._orders is None:
            self._orders = tuple(tf.zeros([0], tf.int64) for _ in splits)  # test steps slice: placeholders, traced once
        count = min(self.per_call, self.steps - self._begin)
        begin, count_t = tf.constant(self._begin, tf.int64), tf.constant(count, tf.int64)
        args = (tuple(s.x for s in splits), tuple(s.y for s in splits), self._orders, begin, count_t)
        if self._run is None:
            any_length = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), args[:3])
            scalars = (tf.TensorSpec([], tf.int64),) * 2
            # No AutoGraph, as Keras' own step (``do_not_convert``): the loop is an explicit ``tf.while_loop``, and
            # converting the model's train step and every layer under it cost about as much as tracing them.
            self._run = tf.function(self._python_run, input_signature=[*any_length, *scalars], autograph=False)
        logs = self._run(*args)
        self._begin = (self._begin + count) % self.steps
        return logs


def _kept(model, splits: list, fused: bool, *, train: bool) -> _Steps:
    kept = _KEPT.setdefault(model, {})
    steps = kept.get(train)
    bs = splits[0].batch_size
    if steps is None or steps.batch_size != bs or steps.per_call != int(model.steps_per_execution):
        steps = kept[train] = _Steps(model, bs, train, fused)
    steps.splits = splits  # the arrays are arguments of the traced function: other splits of their shapes, no trace
    steps.start()
    return steps


def resident_evaluate(model, split) -> dict:
    """``model.evaluate`` (``return_dict``) over a split's samples in their order, each batch sliced inside the test
    step's graph (the steps validation traced, when it ran on the resident path). ``split``: a
    :class:`~experiments.data.tfdata.ResidentSplit`, or one per replica for a fused model; its shuffling is
    irrelevant here (the scores are means over all the split's samples)."""
    steps = _kept(model, *_as_splits(split), train=False)
    with own_step_functions(model, test=steps):
        return model.evaluate(steps.stand_in(), verbose=0, return_dict=True)


@contextlib.contextmanager
def resident_fit(model, train_split, val_split=None):
    """A context in which ``model.fit`` gathers its batches in the graph.

    Args:
        model: the compiled model.
        train_split: the training split (:func:`experiments.data.tfdata.resident_split`), or for a fused
            model a sequence of them, one per replica.
        val_split: the validation split(s), likewise; None: no validation.

    Yields:
        ``(train, val)``: the datasets to hand to ``fit`` in place of the training and validation datasets
        (``val`` None when ``val_split`` is None or shuffled: Keras validates on its own iterator then).
    """
    trains, fused = _as_splits(train_split)
    train = _kept(model, trains, fused, train=True)
    vals = None if val_split is None else _as_splits(val_split)[0]
    val = None
    if vals is not None and all(s is not None and not s.shuffle for s in vals) and applies(model, vals):
        val = _kept(model, vals, fused, train=False)
    with own_step_functions(model, train=train, test=val):
        yield train.stand_in(), None if val is None else val.stand_in()
