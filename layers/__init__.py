"""The layer library of layerlab and its registry.

``layers.layer_registry`` (in the submodule ``layers.registry``) maps names used in
YAML to layer classes: Keras' built-in
layers by class name, the lecture's custom layers, and layers from user
modules loaded with :func:`load_modules`.  ``layers.functions`` maps names to
the functions usable in ``Lambda`` layers and as activations (``abs``,
``square``, ``rescale``, ``rectifier``).
"""

from layers.builtin import register_keras_layers
from layers.dense import ResidualDense, SimpleDense
from layers.functions import (
    absolute,
    activation_name,
    functions,
    get_function,
    rectifier,
    rescale,
    resolve_activation,
    square,
)
from layers.preprocess import PreProcess
from layers.registry import Registry, RegistryError, layer_registry, register_layer
from layers.state import ComputeSum, ComputeSum2

register_keras_layers()


def load_modules(modules) -> None:
    """Import user modules (dotted paths) so their registrations run."""
    for m in modules or ():
        layer_registry.load_module(m)


__all__ = [
    "Registry",
    "RegistryError",
    "register_layer",
    "layer_registry",
    "functions",
    "get_function",
    "resolve_activation",
    "activation_name",
    "square",
    "absolute",
    "rescale",
    "rectifier",
    "SimpleDense",
    "ResidualDense",
    "PreProcess",
    "ComputeSum",
    "ComputeSum2",
    "load_modules",
]
