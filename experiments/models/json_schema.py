"""The JSON Schema of the model files (``conf/model/*.yaml``), generated from the live registry.

Editors that speak JSON Schema (VS Code's YAML extension, JetBrains IDEs, any
editor with yaml-language-server) then complete ``type:`` from the registry's
names and each layer's arguments, show their docstrings, and mark a misspelled
layer or argument while the file is being written.  The schema says what
:func:`~experiments.models.build_model` accepts: the sequential form
(``input`` + ``layers``), the graph form (``inputs`` + ``nodes`` + ``outputs``),
``blocks:`` and their uses, ``share:``; the shapes and the graph's wiring are
still checked only by the builder.

Written for draft-07, the draft yaml-language-server supports fully.  Wherever
OmegaConf may interpolate (``${model.activation}``) or a block parameter may
stand (``$units``), a string starting with ``$`` or holding ``${`` is accepted:
the value is only known once Hydra composes the config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import layers as layerlib
from layers.functions import activation_names
from layers.signature import Argument, describe_layer

DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_ID = "https://layerlab.local/model.schema.json"
# Keys of a layer spec beyond the constructor's arguments (see experiments.models.specs.NODE_KEYS).
_NODE_ONLY = ("inputs", "share")
# Arguments whose string value names an activation (experiments.models.specs.ACTIVATION_ARGS).
_ACTIVATION_ARGS = ("activation", "recurrent_activation")
_REF = "#/definitions/"


def model_schema() -> dict:
    """The schema as a JSON-ready dict, for the layers and functions registered now."""
    names = layerlib.layer_registry.names()
    layer_defs = _shared_arguments({f"layer_{n}": _layer_def(n) for n in names})
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "layerlab model",
        "description": (
            "A model of conf/model/: the sequential form (input + layers) or the graph form "
            "(inputs + nodes + outputs), with optional reusable blocks. Generated from the layer "
            "registry by `python -m experiments.schema`."
        ),
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "The model's name (conf/model/<name>.yaml)."},
            "description": {"type": "string", "description": "A sentence on what the model is."},
            "activation": {
                "$ref": _REF + "activation",
                "description": "The model's hidden activation, referred to as ${model.activation}.",
            },
            "input": {"$ref": _REF + "input", "description": "The sequential form's input."},
            "layers": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": _REF + "sequential_item"},
                "description": "The sequential form: layer specs (type + arguments) or block uses, in order.",
            },
            "inputs": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {"$ref": _REF + "input"},
                "description": "The graph form's named inputs.",
            },
            "nodes": {"$ref": _REF + "nodes", "description": "The graph form's named nodes."},
            "outputs": {"$ref": _REF + "names", "description": "The graph form's output node(s)."},
            "blocks": {
                "type": "object",
                "additionalProperties": {"$ref": _REF + "block"},
                "description": "Reusable sub-graphs; each use makes new layers (own weights).",
            },
        },
        # Other keys are the model's own variables (hidden_units: 128) for ${model.x}; never structured.
        "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        "oneOf": [
            {"required": ["input", "layers"], "not": {"anyOf": [{"required": ["nodes"]}, {"required": ["outputs"]}]}},
            {"required": ["inputs", "nodes", "outputs"], "not": {"required": ["layers"]}},
        ],
        "definitions": {
            "interpolation": {
                "type": "string",
                "pattern": r"\$\{|^\$[A-Za-z_]",
                "description": "An OmegaConf interpolation (${model.activation}) or a block parameter ($units).",
                # yaml-language-server's own keyword: the editor says this instead of the bare pattern.
                "patternErrorMessage": "not a value this key accepts (nor a ${...} interpolation or a $param)",
            },
            "activation": {
                "anyOf": [
                    {"enum": activation_names()},
                    {"type": "null"},
                    {"const": "auto"},
                    {"$ref": _REF + "interpolation"},
                ],
                "description": "A registered function or a Keras activation (auto, on a last layer "
                "of units: null: chosen by the dataset's task).",
            },
            "names": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
            "input": {
                "type": "object",
                "required": ["shape"],
                "additionalProperties": False,
                "properties": {
                    "shape": {
                        "anyOf": [
                            {
                                "type": "array",
                                "items": {
                                    "anyOf": [
                                        {"type": "integer", "minimum": 1},
                                        {"type": "null"},
                                        {"$ref": _REF + "interpolation"},
                                    ]
                                },
                            },
                            {"type": "null"},
                            {"$ref": _REF + "interpolation"},
                        ],
                        "description": "Per-sample shape, without the batch axis; null: the dataset's.",
                    },
                    "dtype": {"type": "string", "description": "uint8 for raw images, float32 (default) otherwise."},
                },
            },
            "layer": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {
                        "anyOf": [{"enum": names}, {"$ref": _REF + "interpolation"}],
                        "description": "A name of the layer registry (python runner.py list_layers=true).",
                    }
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": n}}, "required": ["type"]},
                        "then": {"$ref": _REF + f"layer_{n}"},
                    }
                    for n in names
                ],
            },
            "block_use": {
                "type": "object",
                "required": ["block"],
                "properties": {
                    "block": {"type": "string", "description": "A name under the model's blocks:."},
                    "inputs": {"$ref": _REF + "names"},
                },
                "not": {"anyOf": [{"required": ["type"]}, {"required": ["share"]}]},
                "additionalProperties": {"description": "A value for one of the block's params."},
            },
            "shared": {
                "type": "object",
                "required": ["share", "inputs"],
                "additionalProperties": False,
                "properties": {
                    "share": {"type": "string", "description": "Another node: reuse its layer and weights."},
                    "inputs": {"$ref": _REF + "names"},
                },
            },
            "sequential_item": {
                "if": {"required": ["block"]},
                "then": {"$ref": _REF + "block_use"},
                "else": {"allOf": [{"$ref": _REF + "layer"}, {"properties": {k: False for k in _NODE_ONLY}}]},
            },
            "node": {
                "required": ["inputs"],
                "properties": {"inputs": {"$ref": _REF + "names"}},
                "if": {"required": ["share"]},
                "then": {"$ref": _REF + "shared"},
                "else": {
                    "if": {"required": ["block"]},
                    "then": {"$ref": _REF + "block_use"},
                    "else": {"allOf": [{"$ref": _REF + "layer"}, {"properties": {"share": False}}]},
                },
            },
            "nodes": {"type": "object", "minProperties": 1, "additionalProperties": {"$ref": _REF + "node"}},
            "block": {
                "type": "object",
                "required": ["inputs", "nodes", "outputs"],
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "params": {"type": "object", "description": "Parameters with defaults; $name refers to one."},
                    "inputs": {"$ref": _REF + "names"},
                    "nodes": {"$ref": _REF + "nodes"},
                    "outputs": {"$ref": _REF + "names"},
                },
            },
            **layer_defs,
        },
    }


def _layer_def(name: str) -> dict:
    """The keys a spec with ``type: name`` may have: the node keys and the constructor's arguments."""
    info = describe_layer(name, layerlib.layer_registry.get(name))
    props: dict[str, Any] = {"type": {}, "inputs": {}, "share": {}}
    for arg in info.arguments:
        props[arg.name] = _argument_schema(name, arg)
    out: dict[str, Any] = {"description": info.summary, "properties": props, "additionalProperties": False}
    required = [a.name for a in info.arguments if a.required]
    if required:
        out["required"] = required
    return out


def _shared_arguments(layer_defs: dict[str, dict]) -> dict[str, dict]:
    """Arguments described identically by several layers (``dtype``, ``padding``, ...) defined once, as ``arg_<name>``.

    Half the schema's size otherwise; variants of one name are ``arg_<name>_2``, ... in order of first use.
    """
    uses: dict[tuple[str, str], int] = {}
    for layer_def in layer_defs.values():
        for arg, schema in layer_def["properties"].items():
            if schema:
                key = (arg, json.dumps(schema, sort_keys=True))
                uses[key] = uses.get(key, 0) + 1
    shared: dict[str, dict] = {}
    refs: dict[tuple[str, str], str] = {}
    for (arg, text), count in uses.items():
        if count > 1:
            variant = sum(1 for a, _ in refs if a == arg)
            name = f"arg_{arg}" + (f"_{variant + 1}" if variant else "")
            refs[(arg, text)] = name
            shared[name] = json.loads(text)
    for layer_def in layer_defs.values():
        props = layer_def["properties"]
        for arg, schema in props.items():
            ref = refs.get((arg, json.dumps(schema, sort_keys=True)))
            if ref:
                props[arg] = {"$ref": _REF + ref}
    return {**shared, **layer_defs}


def _argument_schema(layer: str, arg: Argument) -> dict:
    if arg.name in _ACTIVATION_ARGS or (layer == "Lambda" and arg.name == "function"):
        out: dict[str, Any] = {"$ref": _REF + "activation"}
    elif arg.types:
        out = {
            "anyOf": [
                {"type": list(arg.types) if len(arg.types) > 1 else arg.types[0]},
                {"$ref": _REF + "interpolation"},
            ]
        }
        if arg.name == "units" and "null" not in arg.types:  # the last layer's size from the data
            out["anyOf"].insert(1, {"type": "null"})
    else:
        out = {}
    # Draft-07 ignores keywords beside $ref; the description goes in an allOf wrapper for the editors' hover.
    if "$ref" in out:
        out = {"allOf": [out]}
    if arg.doc:
        out["description"] = arg.doc
    if arg.has_default:
        out["default"] = arg.default
    return out


def schema_text() -> str:
    """The schema as the committed file holds it (stable key order, one trailing newline)."""
    return json.dumps(model_schema(), indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    """``python -m experiments.schema [--modules my_lab.layers ...] [--out PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m experiments.schema",
        description="Print (or write) the JSON Schema of the model YAML files, generated from the layer registry.",
    )
    parser.add_argument(
        "--modules",
        nargs="*",
        default=[],
        metavar="MODULE",
        help="registry modules to import first, as in registry.modules (e.g. my_lab.layers)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="write the schema there (e.g. conf/model/model.schema.json) instead of printing it",
    )
    args = parser.parse_args(argv)
    try:
        layerlib.load_modules(args.modules)
    except KeyError as exc:
        print(f"layerlab: error: --modules: {exc}", file=sys.stderr, flush=True)
        return 2
    text = schema_text()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(
        f"layerlab: wrote {out} ({len(layerlib.layer_registry)} layers); model YAML files beside it use it with the "
        f"first line `# yaml-language-server: $schema=./{out.name}`",
        flush=True,
    )
    return 0
