"""Dense layers of the lecture: ``SimpleDense`` (5.2-5.3) and ``ResidualDense`` (5.6)."""

from __future__ import annotations

import keras
from keras import ops

from layers.functions import activation_name, resolve_activation
from layers.registry import register_layer


def _check_units(units, cls: str) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"{cls}: `units` must be a positive integer, got {units!r}")
    return units


@register_layer
class SimpleDense(keras.layers.Layer):
    """A dense layer written by hand: ``activation(inputs @ kernel + bias)``.

    The lecture's ``SimpleDense`` (sections 5.2-5.3): a random-normal kernel
    and a zero bias made in ``build()`` with ``add_weight``, so Keras tracks,
    trains and saves both (2 weights).

    Args:
        units: positive integer, width of the output.
        activation: ``None`` (linear), a name (Keras' or a registered one such
            as ``"abs"``) or a callable.
        **kwargs: base ``Layer`` arguments (``name``, ``dtype``, ...).
    """

    def __init__(self, units: int = 32, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(units, "SimpleDense")
        self.activation = resolve_activation(activation)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError("SimpleDense: the last dimension of the input must be known")
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer=keras.initializers.RandomNormal(stddev=0.05),
            trainable=True,
            name="kernel",
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="bias")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, self.kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activation_name(self.activation)}


@register_layer
class ResidualDense(keras.layers.Layer):
    """A dense residual block: ``act(x + dense2(act(dense1(x))))`` (lecture 5.6).

    Two independent ``Dense`` sub-layers (4 weights; 33,024 parameters at 128
    units) and an ``Add`` shortcut.  The shortcut adds the input to the second
    dense output, so ``units`` must equal the input width: this is checked in
    ``build()`` with a precise error rather than failing inside ``Add``.

    Args:
        units: positive integer, width of both dense layers; must equal the
            last dimension of the input.
        activation: ``None``, a name (``"relu"``, ``"abs"``, ...) or a callable.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, units: int = 32, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _check_units(units, "ResidualDense")
        self.activation = resolve_activation(activation)
        # Two separate layers on purpose: one layer called twice would share weights.
        self.dense1 = keras.layers.Dense(self.units, name="dense1")
        self.dense2 = keras.layers.Dense(self.units, name="dense2")
        self.shortcut = keras.layers.Add(name="add")

    def build(self, input_shape):
        width = input_shape[-1]
        if width is not None and width != self.units:
            raise ValueError(
                f"ResidualDense: units={self.units} but the input is {width} wide; the shortcut adds "
                f"the input to the block's output, so set units={width} (or put a Dense({self.units}) "
                "before the block)"
            )
        self.dense1.build(input_shape)
        self.dense2.build((*input_shape[:-1], self.units))

    def call(self, inputs):
        z1 = self.dense1(inputs)
        a1 = self.activation(z1)
        z2 = self.dense2(a1)
        return self.activation(self.shortcut([inputs, z2]))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activation_name(self.activation)}
