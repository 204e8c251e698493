"""The replicas of a fused group as ONE stack: each weighted layer a batched matrix product over a replica axis.

The fused model of :mod:`experiments.training.fused.engine` runs R copies of
a model side by side, one branch per replica: R small products per layer
and a trace that grows with R. When every layer of the (Sequential) model is
one this module can stack, the fused model is built instead as

    R inputs -> stack [R, batch, ...] -> per layer: stacked -> R outputs ``r{i}``

* a weighted layer (``Dense``, ``SimpleDense``, ``ResidualDense``) becomes
  one ``einsum`` of the activations ``[R, batch, in]`` with the replicas'
  kernels stacked ``[R, in, out]`` (plus their stacked biases);
* a layer without weights and without randomness that works sample by
  sample (``Flatten``, ``Lambda``, ``Activation``, ...) runs once on the
  replicas folded into the batch axis ``[R * batch, ...]``.

The stacked layers hold the replicas' own layers, so the fused model's
variables are still the replicas' variables (their standalone models,
checkpoints and optimizer map are unchanged), and replica i's loss reaches
only replica i's kernels: its gradient is its own, a NaN in one replica stays
in its slice. Anything else (a ``Conv2D``, a random layer, a user's custom
layer, a graph model) is not stacked: :func:`stackable` says why and the
engine falls back to one branch per replica.
"""

from __future__ import annotations

import keras
from keras import ops

# Weightless, random-free layers that treat each sample on its own: safe to run on [R * batch, ...].
SAMPLEWISE = (
    "Flatten",
    "Lambda",
    "Activation",
    "Reshape",
    "Identity",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "Rescaling",
    "PreProcess",
    "MaxPooling2D",
    "AveragePooling2D",
)
DENSE_LIKE = ("Dense", "SimpleDense")


def choose_layout(setting: str) -> str:
    """``sweep.fuse_layout`` resolved: ``stacked`` or ``branches``.

    ``auto`` is ``branches`` on TensorFlow without a GPU: there the replicas' branches, run side by side with one
    thread per op, cost less per replica and step than one batched product over a replica axis, whose stacked
    activations leave the caches (BENCHMARKS.md, "Replicas per step"); ``stacked`` elsewhere (JAX compiles the
    stack into one program; a GPU wants the large batched product).
    """
    if setting != "auto":
        return setting
    if keras.config.backend() != "tensorflow":
        return "stacked"
    import tensorflow as tf

    return "stacked" if tf.config.list_physical_devices("GPU") else "branches"


def stackable(model: keras.Model) -> str | None:
    """None when :func:`stacked_model` can express ``model``; else the reason, in a few words."""
    if not isinstance(model, keras.Sequential):
        return f"'{model.name}' is a graph model, not a layer list"
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in DENSE_LIKE:
            if kind == "Dense" and (
                layer.kernel_constraint
                or layer.bias_constraint
                or layer.lora_enabled
                or getattr(layer, "quantization_mode", None)
            ):
                return f"its Dense layer '{layer.name}' has constraints, LoRA or quantization"
        elif kind == "ResidualDense":
            continue
        elif kind not in SAMPLEWISE or layer.weights:
            return f"its layer '{layer.name}' ({kind}) cannot be stacked"
    return None


def _dense_parts(layer):
    """(kernel, bias or None, activation) of a Dense-like layer."""
    if type(layer).__name__ == "Dense":
        return layer.kernel, (layer.bias if layer.use_bias else None), layer.activation
    return layer.kernel, layer.bias, layer.activation


class _Stacked(keras.layers.Layer):
    """Base of the stacked layers: holds the replicas' layers (so their variables are the model's)."""

    def __init__(self, group: list, **kwargs):
        super().__init__(dtype=group[0].dtype_policy, **kwargs)
        self.group = group
        self.built = True

    def build(self, input_shape):
        self.built = True


def _dense(x, group, compute_dtype, activate: bool = True):
    """``activation(x @ kernel + bias)`` of each replica's layer on its slice ``x[i]``, as one batched product."""
    parts = [_dense_parts(layer) for layer in group]
    kernel = ops.cast(ops.stack([k.value for k, _, _ in parts]), compute_dtype)
    y = ops.einsum("rbi,rio->rbo", x, kernel)
    if parts[0][1] is not None:
        y = y + ops.cast(ops.stack([b.value for _, b, _ in parts]), compute_dtype)[:, None, :]
    return parts[0][2](y) if activate else y


class StackedDense(_Stacked):
    """R ``Dense`` / ``SimpleDense`` layers of one config as one batched product.

    ``activate=False`` (the last layer): the activation is left to :class:`TakeReplica`, applied to each
    replica's slice, so a softmax output keeps the logits Keras' crossentropy reads, as in the solo model.
    """

    def __init__(self, group: list, activate: bool = True, **kwargs):
        super().__init__(group, **kwargs)
        self.activate = activate

    def call(self, x):
        return _dense(x, self.group, self.compute_dtype, self.activate)


class StackedResidual(_Stacked):
    """R ``ResidualDense`` blocks: ``act(x + dense2(act(dense1(x))))``, each product batched."""

    def call(self, x):
        act = self.group[0].activation
        z2 = _dense(
            act(_dense(x, [b.dense1 for b in self.group], self.compute_dtype)),
            [b.dense2 for b in self.group],
            self.compute_dtype,
        )
        return act(x + z2)


class Folded(_Stacked):
    """One sample-wise layer run on the replicas folded into the batch axis."""

    def call(self, x):
        replicas = len(self.group)
        y = self.group[0](ops.reshape(x, (-1, *x.shape[2:])))
        return ops.reshape(y, (replicas, -1, *y.shape[1:]))

    def compute_output_shape(self, input_shape):
        inner = self.group[0].compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], None, *inner[1:])


class StackInputs(keras.layers.Layer):
    def call(self, xs):
        return ops.stack(xs, axis=0)


class TakeReplica(keras.layers.Layer):
    """Replica ``index``'s slice of the stack: the fused model's output ``r{index}``."""

    def __init__(self, index: int, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.index = index
        self.activation = activation

    def call(self, x):
        return x[self.index] if self.activation is None else self.activation(x[self.index])


def stacked_model(models: list[keras.Model], input_name, output_name) -> keras.Model:
    """One functional model over the replicas' layers: input ``input_name(i)`` -> stack -> output ``output_name(i)``."""
    spec = models[0].inputs[0]
    inputs = [keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=input_name(i)) for i in range(len(models))]
    x = StackInputs(name="stack_replicas")(inputs)
    last = len(models[0].layers) - 1
    activation = None
    for j, first in enumerate(models[0].layers):
        group = [m.layers[j] for m in models]
        kind = type(first).__name__
        if kind in DENSE_LIKE and j == last:
            activation = _dense_parts(first)[2]
            x = StackedDense(group, activate=False, name=f"stacked_{first.name}")(x)
            continue
        cls = StackedDense if kind in DENSE_LIKE else StackedResidual if kind == "ResidualDense" else Folded
        x = cls(group, name=f"stacked_{first.name}")(x)
    outputs = [TakeReplica(i, activation, name=output_name(i))(x) for i in range(len(models))]
    return keras.Model(inputs, outputs, name="fused_replicas")
