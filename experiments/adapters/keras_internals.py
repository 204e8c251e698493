"""Keras internals used where Keras has no public way; checked against keras 3.15.1
(``tests/test_adapters.py`` fails when they change).

:mod:`experiments.models.describe` draws the table of ``model.summary()`` at a
fixed width.  ``model.summary(print_fn=..., line_length=...)`` renders through
a ``rich`` console whose width comes from the terminal or ``$COLUMNS`` (80
without a terminal), which clips the table; widening it would mean writing
the environment.  The rows need the model's call graph, which Keras keeps in
private attributes: the nodes by depth of a functional model, the nodes a
layer was called in, and the (layer, node, tensor) a symbolic tensor comes
from.  The public ``layer.input`` / ``layer.output`` name only a layer's
first call, not every call of a shared layer.

:func:`own_step_functions` lets ``fit`` run train and test functions of ours (batches gathered in the
graph, :mod:`experiments.training.resident`).

:func:`build_training_state` creates a compiled model's optimizer and
metric variables before ``fit`` (Keras builds them inside the first trace of
the train step, which makes TensorFlow trace it twice).
"""

from __future__ import annotations

import contextlib


def nodes_by_depth(model) -> list[list] | None:
    """The call nodes of a functional model, one list per depth (None for a model without a graph)."""
    levels = getattr(model, "_nodes_by_depth", None)
    return None if levels is None else list(levels.values())


def inbound_nodes(layer) -> list:
    """The nodes in which ``layer`` was called (every model it is part of), oldest first."""
    return list(getattr(layer, "_inbound_nodes", None) or [])


def tensor_origin(tensor) -> tuple:
    """``(operation, node index, tensor index)`` that produced a symbolic tensor."""
    return tuple(tensor._keras_history)


def build_training_state(model, element_spec) -> None:
    """Create the optimizer's and the compiled metrics' variables before ``fit`` traces its train step.

    Without a distribution strategy, Keras 3 (TensorFlow backend) creates them
    lazily, inside the first trace of the train step; ``tf.function`` then
    traces the step a second time, since a function that created variables
    must be traced again without creating them (its cost: BENCHMARKS.md). Keras'
    ``_symbolic_build`` (what its ``fit`` does itself under a strategy) builds
    them from the shapes alone: no data is read, no random number drawn, the
    values are those Keras would create (zeros).

    Args:
        model: a compiled model.
        element_spec: the training dataset's ``element_spec`` (``(x, y)`` specs).
    """
    import keras

    if keras.config.backend() != "tensorflow":  # the double trace is tf.function's; other backends build in fit
        return
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=element_spec)


# Keras' fit makes a new iterator of the training dataset at the end of each epoch and another at the start of
# the next (steps_per_epoch unset), the second one used: a dataset that reshuffles per iteration gives its
# epochs the orders of iterations 0, 2, 4, ...
KERAS_ITERATORS_PER_EPOCH = 2


@contextlib.contextmanager
def own_step_functions(model, train=None, test=None):
    """Let ``model.fit`` call ``train(iterator)`` / ``test(iterator)`` (those not None) in place of the train and
    test functions Keras would make.

    Keras 3's ``fit`` and ``evaluate`` (TensorFlow backend) call ``model.train_function(iterator)`` /
    ``model.test_function(iterator)`` once per ``steps_per_execution`` steps and keep a function that is already
    set (``make_train_function``, ``make_test_function``); the ones before are put back on exit.
    """
    before = model.train_function, model.test_function
    if train is not None:
        model.train_function = train
    if test is not None:
        model.test_function = test
    try:
        yield
    finally:
        model.train_function, model.test_function = before


def use_fused_adam_kernel(optimizer) -> bool:
    """Let a plain ``keras.optimizers.Adam`` on TensorFlow update each variable with TensorFlow's fused
    ``ResourceApplyAdam`` kernel; returns whether it does.

    Keras' ``Adam.update_step`` builds the update from about fifteen small ops per variable, each a pass over
    the variable and a dispatch in the step's graph; the kernel computes the same formula in one
    (``lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, ``m += (g - m)(1 - beta_1)``,
    ``v += (g^2 - v)(1 - beta_2)``, ``var -= lr_t * m / (sqrt(v) + epsilon)``): equal within float rounding
    (``tests/test_adapters.py``). Keras' own step still runs where the kernel does not apply: AMSGrad (the
    kernel has none), sparse gradients, another dtype than the variable's, a ``tf.distribute`` strategy.
    Weight decay, gradient clipping and EMA act outside ``update_step`` and are unchanged.
    """
    import keras

    if keras.config.backend() != "tensorflow" or type(optimizer) is not keras.optimizers.Adam or optimizer.amsgrad:
        return False
    import tensorflow as tf

    keras_step = optimizer.update_step

    def update_step(gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices) or tf.distribute.has_strategy():
            return keras_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(optimizer.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
        index = optimizer._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=optimizer._momentums[index].handle,
            v=optimizer._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(optimizer.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )

    optimizer.update_step = update_step
    return True
