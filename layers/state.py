"""Layers with non-trainable state: ``ComputeSum`` and ``ComputeSum2`` (lecture 5.5).

The lecture keeps the running sum in a raw ``tf.Variable``, which Keras 3 does
not track (it prints 0 weights; the state is neither saved nor restored).
Here the sum is a non-trainable weight made with ``add_weight``.
"""

from __future__ import annotations

import keras
from keras import ops

from layers.registry import register_layer


class _RunningSum(keras.layers.Layer):
    """Adds the column sums of every batch it sees to a tracked running total.

    The output is the total so far, shape ``(input_dim,)`` (no batch axis),
    exactly as in the lecture.
    """

    def _make_total(self, width: int):
        self.total = self.add_weight(shape=(width,), initializer="zeros", trainable=False, name="total")

    def call(self, inputs):
        self.total.assign_add(ops.sum(ops.cast(inputs, self.total.dtype), axis=0))
        # A copy, not the variable itself: eager callers must see this step's value.
        return ops.copy(self.total)

    def compute_output_shape(self, input_shape):
        return (input_shape[-1],)


@register_layer
class ComputeSum(_RunningSum):
    """Running column sum with a width fixed up front (lecture 5.5, first form).

    Args:
        input_dim: positive integer, the width of the inputs (checked in ``build``).
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, input_dim: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError(f"ComputeSum: `input_dim` must be a positive integer, got {input_dim!r}")
        self.input_dim = input_dim

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.input_dim:
            raise ValueError(
                f"ComputeSum: input_dim={self.input_dim} but the input is {input_shape[-1]} wide; "
                f"set input_dim={input_shape[-1]} or use ComputeSum2, which infers it"
            )
        self._make_total(self.input_dim)

    def compute_output_shape(self, input_shape):
        return (self.input_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim}


@register_layer
class ComputeSum2(_RunningSum):
    """Running column sum whose width is taken from the input in ``build`` (lecture 5.5, second form).

    Args:
        **kwargs: base ``Layer`` arguments.
    """

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError("ComputeSum2: the last dimension of the input must be known")
        self._make_total(input_shape[-1])
