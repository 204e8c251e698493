"""One layer spec or input spec -> a Keras layer or input, checked against the registry.

A layer spec is ``type`` (a registry name) plus that layer's constructor
arguments; the arguments are checked against the constructor's signature
before the class is called, so a typo is reported with its config path and the
closest valid name.  Also here: the small helpers the graph builder shares
(``$param`` substitution, did-you-mean, one-or-many lists).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import keras

import layers as layerlib
from experiments.errors import ModelGraphError
from layers.signature import constructor_arguments

# Keys of a layer spec that are not layer constructor arguments.
NODE_KEYS = {"type", "block", "inputs", "share"}
# Arguments whose string value names an activation function.
ACTIVATION_ARGS = {"activation", "recurrent_activation"}

#: ``claim(name, path)`` reserves a layer name for the model being built (raises on a duplicate).
Claim = Callable[[str, str], None]


def did_you_mean(name: Any, options: Iterable) -> str:
    """``"; did you mean 'x'?"`` for the options close to ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), sorted(map(str, options)), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def as_list(value: Any) -> list:
    """``None`` -> ``[]``, a scalar -> ``[scalar]``, a list or tuple -> a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def substitute(value: Any, params: dict | None, path: str) -> Any:
    """Replace ``$name`` strings (block parameters) recursively."""
    if isinstance(value, str) and value.startswith("$") and len(value) > 1 and value[1:].isidentifier():
        if params is None or value[1:] not in params:
            raise ModelGraphError(
                f"refers to block parameter {value[1:]!r}, which is not defined here",
                path=path,
                value=value,
                fix="declare it under the block's `params:` (or remove the $)",
            )
        return params[value[1:]]
    if isinstance(value, list):
        return [substitute(v, params, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute(v, params, f"{path}.{k}") for k, v in value.items()}
    return value


def constructor_params(cls) -> tuple[set[str], set[str]]:
    """(accepted argument names, required ones) of a layer class's constructor (:mod:`layers.signature`)."""
    arguments = constructor_arguments(cls)
    return {a.name for a in arguments}, {a.name for a in arguments if a.required}


def make_layer(
    spec: dict, path: str, claim: Claim, layer_name: str | None = None, params: dict | None = None
) -> keras.layers.Layer:
    """The layer a spec describes; ``layer_name`` is its name unless the spec gives one."""
    if "type" not in spec:
        raise ModelGraphError(
            "the layer spec has no `type`",
            path=path,
            fix="add `type: <a registry name>`; `python runner.py list_layers=true` lists them",
        )
    type_name = spec["type"]
    if type_name not in layerlib.layer_registry:
        raise ModelGraphError(
            layerlib.layer_registry.miss_message(type_name, how=False),
            path=f"{path}.type",
            value=type_name,
            fix="use a registered name (`python runner.py list_layers=true`). "
            + layerlib.layer_registry.how_to_register,
        )
    cls = layerlib.layer_registry.get(type_name)
    args = {k: substitute(v, params, f"{path}.{k}") for k, v in spec.items() if k not in NODE_KEYS}
    if layer_name is not None:
        args.setdefault("name", layer_name)
    accepted, required = constructor_params(cls)
    for k in args:
        if k not in accepted:
            raise ModelGraphError(
                f"{type_name} has no argument {k!r}{did_you_mean(k, accepted)}",
                path=f"{path}.{k}",
                fix=f"its arguments are {', '.join(sorted(accepted))}",
            )
    missing = sorted(required - set(args))
    if missing:
        raise ModelGraphError(
            f"{type_name} needs the argument {missing[0]!r}",
            path=f"{path}.{missing[0]}",
            fix=f"add `{missing[0]}: <value>` to the layer spec",
        )
    if args.get("name"):
        claim(args["name"], path)
    for k in ACTIVATION_ARGS & set(args):
        if isinstance(args[k], str):
            args[k] = _function(args[k], f"{path}.{k}")
    if type_name == "Lambda" and isinstance(args.get("function"), str):
        args["function"] = _function(args["function"], f"{path}.function")
    try:
        return cls(**args)
    except (ValueError, TypeError) as exc:
        raise ModelGraphError(
            f"{type_name} rejected its arguments: {exc}", path=path, fix="correct the argument named in the message"
        ) from None


def make_input(name: str, spec: Any, path: str, claim: Claim, data_shapes: Mapping[str, tuple]):
    """The ``keras.Input`` named ``name``; ``shape: null`` takes the shape from ``data_shapes``."""
    if not isinstance(spec, dict) or "shape" not in spec:
        raise ModelGraphError(
            "an input needs `shape` (and optionally `dtype`)",
            path=path,
            value=spec,
            fix="write `{shape: [28, 28], dtype: uint8}`",
        )
    extra = set(spec) - {"shape", "dtype"}
    if extra:
        raise ModelGraphError(
            "unknown input key", path=f"{path}.{sorted(extra)[0]}", fix="an input has `shape` and `dtype`"
        )
    shape = spec["shape"]
    if shape is None:
        shape = data_shapes.get(name)
        if shape is None:
            raise ModelGraphError(
                "the shape is null (take it from the dataset) but no dataset shape is known here",
                path=f"{path}.shape",
                fix="give the shape explicitly, e.g. [28, 28]",
            )
    if not isinstance(shape, (list, tuple)) or not all(
        (isinstance(d, int) and not isinstance(d, bool) and d > 0) or d is None for d in shape
    ):
        raise ModelGraphError(
            "must be a list of positive integers (per-sample shape, without the batch axis)",
            path=f"{path}.shape",
            value=shape,
            fix="write e.g. [28, 28] or [512, 512, 3]",
        )
    dtype = spec.get("dtype", "float32")
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except Exception:
        raise ModelGraphError(
            "is not a dtype", path=f"{path}.dtype", value=dtype, fix="use uint8 for raw images, float32 otherwise"
        ) from None
    claim(name, path)
    return keras.Input(shape=tuple(shape), dtype=dtype, name=name)


def _function(name: str, path: str):
    try:
        return layerlib.get_function(name)
    except KeyError as exc:
        raise ModelGraphError(
            str(exc),
            path=path,
            value=name,
            fix="use one of the names above (`python runner.py list_layers=true` lists them) "
            "or register your own function",
        ) from None
