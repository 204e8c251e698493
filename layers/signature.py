"""What a registered layer's constructor takes: argument names, defaults, JSON types and help text.

One source for everything that describes a layer's arguments: the model
builder's argument check (:mod:`experiments.models.specs`), the JSON Schema of
the model files and ``list_layers``.  Names and defaults come from
``inspect.signature``, followed through ``**kwargs`` up the class hierarchy to
``keras.layers.Layer`` (so ``name``, ``dtype``, ``trainable`` count too); the
help text and, where the signature has no annotation, the value types come
from the Google-style ``Args:`` section of the docstrings (``docstring_parser``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import docstring_parser
import keras

log = logging.getLogger(__name__)

#: JSON types, in the order they are listed.
JSON_TYPES = ("integer", "number", "boolean", "string", "array", "object", "null")

# Docstrings state an argument's type in their first words ("Positive integer, ...",
# "int or tuple/list of 2 integers, ...", "Float between 0 and 1."). A word
# for a tensor means the value is built in code, so no type is claimed.
_DOC_WORDS = (
    (re.compile(r"\b(int|integers?)\b", re.I), "integer"),
    (re.compile(r"\bfloats?\b", re.I), "number"),
    (re.compile(r"\b(bool|booleans?)\b", re.I), "boolean"),
    (re.compile(r"\b(str|strings?)\b", re.I), "string"),
    (re.compile(r"\b(tuples?|lists?)\b", re.I), "array"),
    (re.compile(r"\b(dict|dictionary)\b", re.I), "object"),
)
_NOT_PLAIN = re.compile(r"\btensors?\b|\bcallable\b|\bfunction\b", re.I)
_ANNOTATIONS = {
    int: "integer",
    float: "number",
    bool: "boolean",
    str: "string",
    list: "array",
    tuple: "array",
    dict: "object",
    type(None): "null",
}


@dataclass(frozen=True)
class Argument:
    """One constructor argument of a layer.

    Args:
        name: the keyword used in YAML.
        required: no default in the signature.
        default: the default value (only when it is plain JSON data; see ``has_default``).
        has_default: whether ``default`` is meaningful.
        types: the JSON types a value may have (empty: unknown, anything goes).
        doc: the docstring's description, whitespace collapsed ("" when undocumented).
    """

    name: str
    required: bool
    default: Any = None
    has_default: bool = False
    types: tuple[str, ...] = ()
    doc: str = ""

    def shown_default(self) -> str:
        """``"= 0.5"``, ``"required"``, or ``""`` (a default that is not plain data, or one a base class sets)."""
        if self.required:
            return "required"
        return f"= {self.default!r}" if self.has_default else ""


@dataclass(frozen=True)
class LayerInfo:
    name: str
    cls: type
    summary: str
    arguments: tuple[Argument, ...] = field(default_factory=tuple)


@functools.cache  # every layer a model builds asks; the docstrings are parsed once per class
def constructor_arguments(cls) -> tuple[Argument, ...]:
    """Every keyword the constructor of ``cls`` accepts, its own arguments first, then the inherited ones."""
    docs = _arg_docs(cls)
    args: dict[str, Argument] = {}
    first = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        hints = _hints(init)
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in args:
                args[p.name] = _argument(p, first, hints.get(p.name), docs.get(p.name, ""))
        first = False
        if not forwards or klass is keras.layers.Layer:
            break
    return tuple(args.values())


def describe_layer(name: str, cls) -> LayerInfo:
    """The registry entry ``name`` -> its one-line summary and arguments."""
    doc = docstring_parser.parse(inspect.getdoc(cls) or "")
    summary = " ".join((doc.short_description or "").split())
    return LayerInfo(name=name, cls=cls, summary=summary, arguments=constructor_arguments(cls))


def _argument(p: inspect.Parameter, own: bool, hint: Any, doc: str) -> Argument:
    required = own and p.default is p.empty
    has_default, default = _plain(p.default) if p.default is not p.empty else (False, None)
    found = set(_types_from_hint(hint)) if hint is not None else set(_types_from_doc(doc))
    if found and has_default:  # the default alone claims nothing: Keras takes dicts where it shows a name
        found |= set(_types_of_value(default))
    return Argument(
        name=p.name,
        required=required,
        default=default,
        has_default=has_default,
        types=tuple(t for t in JSON_TYPES if t in found),
        doc=doc,
    )


def _arg_docs(cls) -> dict[str, str]:
    """Argument descriptions from the docstrings of ``cls`` and its bases (the nearest one wins)."""
    docs: dict[str, str] = {}
    for klass in cls.__mro__:
        if klass is object:
            break
        for p in docstring_parser.parse(klass.__doc__ or "").params:
            docs.setdefault(p.arg_name.lstrip("*"), " ".join((p.description or "").split()))
    return docs


def _hints(init) -> dict[str, Any]:
    try:
        return typing.get_type_hints(init)
    except Exception as exc:  # an annotation naming something not importable here: no hints, the docstring decides
        log.debug("no type hints for %r: %r", init, exc)
        return {}


def _types_from_hint(hint: Any) -> list[str]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [t for a in typing.get_args(hint) for t in _types_from_hint(a)]
    origin = typing.get_origin(hint) or hint
    found = _ANNOTATIONS.get(origin)
    return [found] if found else []


def _types_from_doc(doc: str) -> list[str]:
    head = re.split(r"[,.;:]", doc, maxsplit=1)[0]  # the type is stated before the first comma or stop
    if not head or _NOT_PLAIN.search(head):
        return []
    found = [t for pattern, t in _DOC_WORDS if pattern.search(head)]
    if found and re.search(r"\bNone\b", head):
        found.append("null")
    return found


def _types_of_value(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["boolean"]
    if isinstance(value, int):
        return ["integer"]
    if isinstance(value, float):
        return ["number"]
    for kind, name in ((str, "string"), (list, "array"), (dict, "object"), (type(None), "null")):
        if isinstance(value, kind):
            return [name]
    return []


def _plain(value: Any) -> tuple[bool, Any]:
    """(True, value as JSON data) for None, numbers, strings and their lists/tuples/dicts; else (False, None)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return (True, [v for _, v in items]) if all(ok for ok, _ in items) else (False, None)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        entries = {k: _plain(v) for k, v in value.items()}
        return (
            (True, {k: v for k, (_, v) in entries.items()}) if all(ok for ok, _ in entries.values()) else (False, None)
        )
    return False, None
