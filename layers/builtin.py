"""Keras' own layers, registered by their class name (``Dense``, ``Conv2D``, ...)."""

from __future__ import annotations

import inspect

import keras

from layers.registry import layer_registry

# Abstract bases and wrappers that make no sense as a YAML node on their own.
_SKIP = {
    "Layer",
    "InputLayer",
    "InputSpec",
    "Wrapper",
    "RNN",
    "TFSMLayer",
    "TorchModuleWrapper",
    "JaxLayer",
    "FlaxLayer",
}


def register_keras_layers() -> int:
    """Register every public layer class of ``keras.layers``; returns how many."""
    count = 0
    for name, obj in vars(keras.layers).items():
        if name.startswith("_") or name in _SKIP or not inspect.isclass(obj):
            continue
        if issubclass(obj, keras.layers.Layer) and name not in layer_registry:
            layer_registry.register(obj, name=name)
            count += 1
    return count
