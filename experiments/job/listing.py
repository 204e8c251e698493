"""``list_layers=true`` (every name) and ``list_layers='*Dense*'`` (the matching layers with their arguments).

Datasets are listed the same way: the overview names every registered dataset option, and a pattern that
matches dataset names (``list_layers=table``, ``list_layers='*'``) shows their keys with defaults.

The filter is a shell pattern matched case-insensitively with :mod:`fnmatch`,
as timm's ``list_models('*resnet*')``; a pattern without wildcards is one
exact name.  Registry modules (``registry.modules``) are loaded first, so a
user's own layers are listed too.
"""

from __future__ import annotations

import fnmatch
import shutil
import textwrap

import keras

import layers
from experiments.errors import ConfigError
from layers.signature import constructor_arguments, describe_layer

_FUNCTIONS_NOTE = "and every Keras activation (relu, elu, gelu, softmax, ...)"


def list_registry(pattern: str | None = None, width: int | None = None) -> str:
    """The registry as text: every name (``pattern`` None), or the layers matching ``pattern`` with their arguments.

    Raises:
        ConfigError: nothing matches ``pattern`` (with the closest names).
    """
    if pattern is None:
        return _overview()
    width = width or shutil.get_terminal_size((100, 24)).columns
    datasets = [d for d in dataset_registry() if fnmatch.fnmatch(d.name.lower(), pattern.lower())]
    matched = [n for n in layers.layer_registry.names() if fnmatch.fnmatch(n.lower(), pattern.lower())]
    functions = [
        n
        for n in layers.functions.names()
        if fnmatch.fnmatch(n.lower(), pattern.lower())
        or any(fnmatch.fnmatch(a.lower(), pattern.lower()) for a in layers.functions.aliases_of(n))
    ]
    if not matched and not functions and not datasets:
        close = layers.layer_registry.suggest(pattern.strip("*?[]")) + layers.functions.suggest(pattern.strip("*?[]"))
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"no layer or function matches the pattern{hint}",
            path="list_layers",
            value=pattern,
            fix="use a shell pattern such as list_layers='*Dense*' (case-insensitive), or "
            "list_layers=true for every name",
        )
    blocks = [_layer_text(n, width) for n in matched] + [_dataset_text(d) for d in datasets]
    if functions:
        blocks.append("Functions (Lambda `function:` and `activation:`): " + ", ".join(_with_aliases(functions)))
    return "\n\n".join(blocks)


def _overview() -> str:
    def origin(name: str) -> str:
        return getattr(layers.layer_registry.get(name), "__module__", "")

    names = layers.layer_registry.names()
    project = [n for n in names if origin(n).startswith("layers.")]
    user = [n for n in names if not origin(n).startswith(("layers.", "keras"))]
    from_keras = [n for n in names if origin(n).startswith("keras")]
    return "\n".join(
        [
            "Layers (type: in model YAML):",
            "  project / user: " + ", ".join(project + user),
            "  keras:          " + ", ".join(from_keras),
            "Functions (Lambda `function:` and `activation:`): "
            + ", ".join(_with_aliases(layers.functions.names()))
            + ", "
            + _FUNCTIONS_NOTE,
            "Datasets (dataset= in config; user loaders: experiments.data.register_dataset or `_target_`): "
            + ", ".join(d.name for d in dataset_registry()),
            "A layer's arguments: python runner.py list_layers=Dense (a name, or a pattern: list_layers='*Dense*'); "
            "a dataset's keys: list_layers=table.",
        ]
    )


def dataset_registry():
    """The registered dataset options (built-in, and those the registry modules added)."""
    from experiments.data import registered

    return registered()


def _dataset_text(info) -> str:
    """``table  (dataset)  summary``, then one line per key: name, default, what it accepts."""
    import dataclasses

    lines = [f"{info.name}  (dataset, {info.loader.__module__})  {info.summary}".rstrip()]
    fields = [f for f in dataclasses.fields(info.schema) if f.name not in ("name", "options")]
    width = max((len(f.name) for f in fields), default=0)
    for f in fields:
        default = (
            repr(f.default_factory())
            if f.default_factory is not dataclasses.MISSING
            else "required"
            if f.default is dataclasses.MISSING
            else repr(f.default)
        )
        lines.append(f"  {f.name:<{width}}  {default:<12}  {f.metadata.get('expect', '')}".rstrip())
    return "\n".join(lines)


def _with_aliases(names: list[str]) -> list[str]:
    return [
        f"{n} (alias {', '.join(layers.functions.aliases_of(n))})" if layers.functions.aliases_of(n) else n
        for n in names
    ]


def _layer_text(name: str, width: int) -> str:
    """``Dense  (keras)  summary``, one line per own argument (name, default or required, JSON type, help),
    then the names of the base ``Layer`` arguments every layer takes."""
    info = describe_layer(name, layers.layer_registry.get(name))
    module = info.cls.__module__
    lines = [f"{name}  ({'keras' if module.startswith('keras') else module})  {info.summary}".rstrip()]
    base = {a.name for a in constructor_arguments(keras.layers.Layer)}
    rows = [(a.name, a.shown_default(), "|".join(a.types), a.doc) for a in info.arguments if a.name not in base]
    w_name = max(len(r[0]) for r in rows) if rows else 0
    w_default = min(max((len(r[1]) for r in rows), default=0), 28)
    w_type = max((len(r[2]) for r in rows), default=0)
    indent = 2 + w_name + 2 + w_default + 2 + w_type + 2
    for arg, default, types, doc in rows:
        head = f"  {arg:<{w_name}}  {default:<{w_default}}  {types:<{w_type}}  "
        first_sentence = doc.split(". ")[0].rstrip(".") + "." if doc else ""
        wrapped = textwrap.wrap(first_sentence, max(width - indent, 30)) or [""]
        lines.append((head + wrapped[0]).rstrip())
        lines.extend(" " * indent + w for w in wrapped[1:])
    lines.append("  and the base Layer arguments: " + ", ".join(a.name for a in info.arguments if a.name in base))
    return "\n".join(lines)
