"""How the config schema is written and checked: dataclasses whose fields say what they accept.

A schema class is a plain ``@dataclass`` whose fields are made with
:func:`spec`: a type annotation (``int``, ``float``, ``bool``, ``str``,
``Optional[...]``, ``list``, ``dict``, ``Any`` or another schema class), an
optional value check, and ``expect``, the words a researcher reads when the
value is wrong.  :func:`check_node` checks one config node against a class
and returns it as a plain dict with the defaults filled in; every problem is
a :class:`~experiments.errors.ConfigError` naming the dotted path, the value,
what is expected and how to set it.

Types are checked strictly (no ``"5"`` -> ``5`` conversion, ``True`` is not an
integer): a YAML typo should be reported, not silently coerced.  :func:`typed`
checks a node and returns the frozen schema instance itself, which is what the
code below ``experiments/job/`` reads (``job.training.epochs``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import numbers
import typing
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from experiments.errors import ConfigError

_NO_DEFAULT = dataclasses.MISSING


def spec(
    default: Any = _NO_DEFAULT,
    *,
    expect: str,
    check: Callable[[Any], bool] | None = None,
    fix: str | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A schema field.

    Args:
        default: the value when the key is absent (none: the key is required).
        expect: what a valid value looks like, for the message ("a positive integer").
        check: ``value -> bool``, run after the type check (ranges, allowed values).
        fix: the fix to suggest instead of the generic "set it with key=<value>".
        default_factory: for mutable defaults (lists, dicts).
    """
    meta = {"expect": expect, "check": check, "fix": fix}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def plain(node: Any) -> Any:
    """An OmegaConf node as plain Python (interpolations resolved); anything else unchanged."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def type_ok(annotation: Any, value: Any) -> bool:
    """Whether ``value`` has the type ``annotation`` names (strictly; bools are not numbers)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return any(type_ok(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation is list or origin is list:
        args = typing.get_args(annotation)
        return isinstance(value, (list, tuple)) and (not args or all(type_ok(args[0], v) for v in value))
    if annotation is dict or origin is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(annotation):
        return isinstance(value, dict)
    raise TypeError(f"unsupported schema annotation {annotation!r}")


def did_you_mean(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_node(
    cls: type, node: Any, path: str, *, extra: Callable[[str], bool] | None = None, label: str | None = None
) -> dict:
    """Check ``node`` against the schema class ``cls``; return it as a dict with defaults filled in.

    Args:
        cls: a dataclass whose fields are made with :func:`spec`.
        node: the config node (``DictConfig`` or mapping).
        path: its dotted path in the composed config (``training``, ``dataset``).
        extra: keys for which this returns True are allowed without a field
            (the model group's free-form layer arguments, say).
        label: how an unknown-key message names the node (``dataset 'digits'``); default: ``path``.

    Raises:
        ConfigError: for the first unknown key, missing key, wrong type or failed check.
    """
    node = plain(node)
    if not isinstance(node, dict):
        raise ConfigError(
            f"expected a mapping of {cls.__name__} keys, got {type(node).__name__}",
            path=path,
            value=node,
            fix=f"select a config group option, e.g. {path}=<option>",
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for key in node:
        if key not in fields and not (extra and extra(key)):
            raise ConfigError(
                f"unknown key for {label or path or 'the config'}{did_you_mean(key, fields)}",
                path=f"{path}.{key}" if path else str(key),
                value=node[key],
                fix=f"remove it or fix its spelling; the keys of {label or path} are {', '.join(fields)}",
            )
    out = dict(node)
    for name, f in fields.items():
        where = f"{path}.{name}" if path else name
        if name in node:
            value = node[name]
        elif f.default is not _NO_DEFAULT:
            value = f.default
        elif f.default_factory is not _NO_DEFAULT:
            value = f.default_factory()
        else:
            raise ConfigError("is required but missing", path=where, fix=f"add `{name}:` to the {path} YAML")
        hint = hints[name]
        nested = _dataclass_of(hint)
        if nested is not None and isinstance(value, dict):
            out[name] = check_node(nested, value, where)
            continue
        meta = f.metadata
        if not type_ok(hint, value) or (meta.get("check") is not None and not meta["check"](value)):
            raise ConfigError(
                f"expected {meta.get('expect', hint)}",
                path=where,
                value=value,
                fix=meta.get("fix") or f"set it with `{where}=<value>` on the command line or in the YAML",
            )
        out[name] = value
    return out


def build(cls: type, checked: dict) -> Any:
    """The (frozen) instance of schema class ``cls`` from a dict :func:`check_node` returned.

    Nested schema classes become instances too and lists become tuples, so the
    object cannot change under the code that reads it; keys without a field
    (the model's free-form graph, the user's own keys) are not attributes: the
    schema class keeps them in a field of its own when it needs them.
    """
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name not in checked:
            continue
        value = checked[f.name]
        nested = _dataclass_of(hints[f.name])
        if nested is not None and isinstance(value, dict):
            value = build(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def typed(cls: type, node: Any, path: str, **kwargs: Any) -> Any:
    """:func:`check_node` (same arguments), then :func:`build`: the checked node as a frozen ``cls``."""
    return build(cls, check_node(cls, node, path, **kwargs))


@functools.cache
def _hints(cls: type) -> dict:
    """The evaluated annotations of a schema class (evaluated once: every job validates several classes)."""
    return typing.get_type_hints(cls)


def _dataclass_of(annotation: Any) -> type | None:
    if dataclasses.is_dataclass(annotation):
        return typing.cast(type, annotation)
    for arg in typing.get_args(annotation):
        if dataclasses.is_dataclass(arg):
            return typing.cast(type, arg)
    return None
