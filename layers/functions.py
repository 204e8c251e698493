"""Named functions of the lecture, for ``Lambda`` layers and as activations.

Python lambdas in a ``Lambda`` layer cannot be loaded back with Keras' safe
mode; functions registered as Keras serializables can.  Each function here is
registered twice: with Keras (package ``layerlab``) so saved models load, and
in :data:`functions` so YAML configs find it by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from layers.registry import Registry, RegistryError

functions = Registry(
    "function",
    how_to_register=(
        "Add one with `@layers.functions.register` on a function also decorated with "
        "`@keras.saving.register_keras_serializable(package=...)`, in a module listed under "
        "`registry.modules` in the config."
    ),
)

_PACKAGE = "layerlab"


def _register(*aliases: str):
    """Register ``fn`` with Keras and in :data:`functions` (plus aliases)."""

    def deco(fn):
        fn = keras.saving.register_keras_serializable(package=_PACKAGE, name=fn.__name__)(fn)
        functions.register(fn, aliases=(f"{_PACKAGE}>{fn.__name__}", *aliases))
        return fn

    return deco


@_register()
def square(x):
    """Element-wise ``x**2`` (lecture 3.1)."""
    return ops.square(x)


@_register("abs")
def absolute(x):
    """Element-wise absolute value ``|x|`` (lecture 3.1 and 4).

    Registered as ``absolute`` and as ``abs``, so ``model.activation=abs``
    works as an activation name and as a ``Lambda`` function.
    """
    return ops.abs(x)


@_register()
def rescale(x, divisor: float = 255.0):
    """Cast to float32 and divide by ``divisor`` (lecture 3.2: pixels to [0, 1]).

    Args:
        x: input tensor, any numeric dtype (uint8 images included).
        divisor: what to divide by; pass it through ``Lambda(arguments=...)``.
    """
    if divisor == 0:
        raise ValueError("rescale: divisor must be non-zero")
    return ops.cast(x, "float32") / divisor


@_register()
def rectifier(x):
    """``concat(relu(x), relu(-x))`` on the last axis (lecture 3.3).

    Keeps both the positive part and the magnitude of the negative part, so
    the output is twice as wide as the input.
    """
    return ops.concatenate([ops.relu(x), ops.relu(-x)], axis=-1)


def get_function(name: str) -> Callable:
    """A function by name: the registered ones first, then Keras' activations.

    Raises:
        RegistryError: naming the miss and the closest names of both sets.
    """
    if name in functions:
        return functions.get(name)
    try:
        fn = keras.activations.get(name)
    except (ValueError, TypeError):
        fn = None
    if fn is None:
        close = functions.suggest(name) + _keras_activation_suggestions(name)
        msg = f"no function or activation named {name!r}"
        if close:
            msg += "; did you mean " + " or ".join(repr(c) for c in dict.fromkeys(close)) + "?"
        msg += (
            " Known: "
            + ", ".join(n for n in functions.names(aliases=True) if ">" not in n)
            + " and Keras' activations (relu, elu, gelu, ...)."
        )
        raise RegistryError(msg)
    return fn


def keras_activation_names() -> list[str]:
    """The names ``keras.activations.get`` knows (``relu``, ``gelu``, ...)."""
    return sorted(
        k
        for k in dir(keras.activations)
        if not k.startswith("_") and k.islower() and k not in ("get", "serialize", "deserialize")
    )


def activation_names() -> list[str]:
    """Every name an ``activation:`` or a Lambda's ``function:`` accepts: registered ones (aliases too), then Keras'."""
    return list(dict.fromkeys(functions.names(aliases=True) + keras_activation_names()))


def _keras_activation_suggestions(name: str) -> list[str]:
    import difflib

    return difflib.get_close_matches(name.lower(), keras_activation_names(), n=3, cutoff=0.6)


def resolve_activation(identifier: Any) -> Callable:
    """Resolve an activation given as ``None``, a callable, or a name.

    Keras' ``activations.get`` only knows its built-ins, so registered names
    (``abs``, ``rectifier``, ``layerlab>absolute``) are looked up here first
    and the function object is handed to Keras.
    """
    if identifier is None:
        return keras.activations.linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        return get_function(identifier)
    if isinstance(identifier, dict):  # a Keras serialization dict
        return keras.activations.deserialize(identifier)
    raise TypeError(f"activation must be None, a name or a callable, got {type(identifier).__name__}: {identifier!r}")


def activation_name(fn: Callable) -> str | None:
    """The name under which ``fn`` round-trips through :func:`resolve_activation`."""
    name = getattr(fn, "__name__", None)
    if name and name in functions and functions.get(name) is fn:
        return name
    serialized = keras.activations.serialize(fn)
    return serialized if isinstance(serialized, str) else name


__all__ = [
    "functions",
    "square",
    "absolute",
    "rescale",
    "rectifier",
    "get_function",
    "activation_names",
    "keras_activation_names",
    "resolve_activation",
    "activation_name",
    "RegistryError",
]
