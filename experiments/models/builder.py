"""Build a Keras model from the ``model`` config group: sequential lists or named graphs.

Two forms, both plain YAML (see ``conf/model/`` and the README):

* **Sequential**: ``input: {shape, dtype}`` and ``layers:``, a list of layer
  specs (``type`` = a registry name, plus that layer's arguments) or block
  uses (``block: name`` plus the block's parameters).
* **Graph**: ``inputs:`` (named inputs), ``nodes:`` (named nodes, each with
  ``inputs:`` naming one or more earlier nodes or inputs; ``share: other``
  reuses another node's layer and weights), ``outputs:`` (node names).

``blocks:`` defines reusable sub-graphs with ``params``; inside a block a
string ``$name`` stands for the value of parameter ``name``.  Every use of a
block makes new layers (own weights).

Everything is validated before a single layer is called: registry names,
constructor arguments, references, cycles, unused nodes, then shapes while the
graph is wired.  Every error is a :class:`ModelGraphError` naming the config
path (``model.nodes.hidden.units``), the value and the fix.
"""

from __future__ import annotations

import difflib
import inspect
import os
from typing import Any, Mapping

import keras
from omegaconf import DictConfig, ListConfig, OmegaConf

import layers as layerlib
from experiments.errors import ModelGraphError

# Keys of a layer spec that are not layer constructor arguments.
NODE_KEYS = {"type", "block", "inputs", "share"}
TOP_KEYS = {"name", "description", "activation", "input", "layers", "inputs", "nodes", "outputs", "blocks"}
BLOCK_KEYS = {"description", "params", "inputs", "nodes", "outputs"}
# Arguments whose string value names an activation function.
ACTIVATION_ARGS = {"activation", "recurrent_activation"}
MAX_BLOCK_DEPTH = 8


def build_model(model_cfg: Any, *, input_shapes: Mapping[str, tuple] | None = None, root: str = "model") -> keras.Model:
    """Build and return the Keras model described by ``model_cfg``.

    Args:
        model_cfg: the ``model`` config node (DictConfig or plain dict).
        input_shapes: shapes for inputs declared with ``shape: null`` (taken
            from the dataset by the runner), by input name (``input`` for the
            sequential form).
        root: the config path of ``model_cfg``, used in error messages.

    Raises:
        ModelGraphError: the graph is invalid; the message names the path.
    """
    spec = _to_plain(model_cfg, root)
    if not isinstance(spec, dict):
        raise ModelGraphError("the model config must be a mapping", path=root, value=type(spec).__name__,
                              fix="see conf/model/lambda_mlp.yaml for the format")
    # Extra scalar keys are the model's own variables (``hidden_units: 128``) for
    # ${model.x} interpolation; an unknown *structured* key is most likely a typo.
    unknown = {k for k in set(spec) - TOP_KEYS if isinstance(spec[k], (dict, list))}
    if unknown:
        key = sorted(unknown)[0]
        raise ModelGraphError(f"unknown key{_did_you_mean(key, TOP_KEYS)}", path=f"{root}.{key}",
                              fix=f"the keys of a model are {', '.join(sorted(TOP_KEYS))}")
    blocks = spec.get("blocks") or {}
    if not isinstance(blocks, dict):
        raise ModelGraphError("must be a mapping of block name to block", path=f"{root}.blocks", fix="see the README's model format")
    builder = _GraphBuilder(blocks, root, input_shapes or {})
    name = spec.get("name") or "model"
    if "layers" in spec:
        if "nodes" in spec or "outputs" in spec:
            raise ModelGraphError("a model has either `layers` (sequential form) or `nodes`/`outputs` (graph form), not both",
                                  path=f"{root}.layers", fix="keep one of the two forms")
        return builder.sequential(spec, name)
    if "nodes" in spec:
        return builder.graph(spec, name)
    raise ModelGraphError("has neither `layers` (sequential form) nor `nodes` (graph form)", path=root,
                          fix="add a `layers:` list or `inputs:`/`nodes:`/`outputs:`; see conf/model/*.yaml")


def summary_text(model: keras.Model) -> str:
    """``model.summary()`` as a string (for printing and for an MLflow artifact)."""
    lines: list[str] = []
    # Keras renders with rich, which clips to $COLUMNS (80 when not on a terminal): widen it.
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "120"
    try:
        model.summary(line_length=110, print_fn=lambda text, line_break=True: lines.append(text))
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(lines) + "\n"


def count_params(model: keras.Model) -> dict[str, int]:
    """Total / trainable / non-trainable parameter counts (optimizer state excluded)."""
    trainable = sum(int(keras.ops.size(w)) for w in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(w)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable, "non_trainable": non_trainable}


# --------------------------------------------------------------------------- internals


def _to_plain(cfg: Any, root: str) -> Any:
    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # an interpolation that does not resolve
            raise ModelGraphError(f"cannot resolve an interpolation ({exc})", path=root,
                                  fix="check the ${...} references in the model YAML") from None
    return cfg


def _did_you_mean(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), sorted(map(str, options)), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _constructor_params(cls) -> tuple[set[str], set[str]]:
    """(accepted argument names, required ones) of a layer class's constructor.

    Follows ``**kwargs`` up the class hierarchy to ``keras.layers.Layer`` so
    base arguments (``name``, ``dtype``, ``trainable``) are accepted too.
    """
    accepted: set[str] = set()
    required: set[str] = set()
    first = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif p.kind is not p.VAR_POSITIONAL:
                accepted.add(p.name)
                if first and p.default is p.empty:
                    required.add(p.name)
        first = False
        if not forwards or klass is keras.layers.Layer:
            break
    return accepted, required


class _GraphBuilder:
    """Turns validated specs into wired Keras layers; one instance per model."""

    def __init__(self, blocks: dict, root: str, input_shapes: Mapping[str, tuple]):
        self.blocks = blocks
        self.root = root
        self.input_shapes = input_shapes
        self.layer_names: set[str] = set()

    # ------------------------------------------------------------ model forms
    def sequential(self, spec: dict, name: str) -> keras.Model:
        root = self.root
        items = spec["layers"]
        if not isinstance(items, list) or not items:
            raise ModelGraphError("must be a non-empty list of layer specs", path=f"{root}.layers",
                                  fix="write `layers:` followed by `- {type: Dense, units: 10}` items")
        inp = self._make_input("input", spec.get("input"), f"{root}.input", name_hint="input")
        if not any(isinstance(it, dict) and "block" in it for it in items):
            # Pure layer list: a real keras.Sequential, as in the lecture's section 6.
            model = keras.Sequential(name=name)
            model.add(inp)
            prev = inp
            for i, item in enumerate(items):
                path = f"{root}.layers.{i}"
                layer = self._make_layer(self._check_item(item, path), path, layer_name=item.get("name"))
                self._call(lambda _x, layer=layer: model.add(layer), [prev], path, shown=layer)
                prev = model.outputs[0]
            return model
        # Block uses expand to several layers: wire them functionally.
        x = inp
        for i, item in enumerate(items):
            path = f"{root}.layers.{i}"
            item = self._check_item(item, path)
            if "block" in item:
                x = self._use_block(item, [x], path, prefix=f"{item['block']}_{i}")
            else:
                layer = self._make_layer(item, path, layer_name=item.get("name"))
                x = self._call(layer, [x], path)
        return keras.Model(inp, x, name=name)

    def _check_item(self, item: Any, path: str) -> dict:
        if not isinstance(item, dict):
            raise ModelGraphError("must be a mapping with a `type` (or `block`) key", path=path, value=item,
                                  fix="write it as `{type: Dense, units: 128}`")
        bad = sorted({"inputs", "share"} & set(item))
        if bad:
            raise ModelGraphError(f"`{bad[0]}` is only meaningful in the graph form (`nodes:`)",
                                  path=f"{path}.{bad[0]}", fix="remove it, or switch to the graph form")
        return item

    def graph(self, spec: dict, name: str) -> keras.Model:
        root = self.root
        inputs_spec = spec.get("inputs")
        if not isinstance(inputs_spec, dict) or not inputs_spec:
            raise ModelGraphError("the graph form needs named inputs", path=f"{root}.inputs",
                                  fix="write `inputs: {image: {shape: [28, 28], dtype: uint8}}`")
        nodes = spec.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            raise ModelGraphError("must be a non-empty mapping of node name to layer spec", path=f"{root}.nodes",
                                  fix="write `nodes: {hidden: {type: Dense, units: 128, inputs: image}}`")
        outputs = _as_list(spec.get("outputs"))
        if not outputs:
            raise ModelGraphError("the graph form needs `outputs`", path=f"{root}.outputs",
                                  fix="name the node(s) whose output is the model's, e.g. `outputs: [out]`")
        tensors = {}
        for in_name, in_spec in inputs_spec.items():
            tensors[in_name] = self._make_input(in_name, in_spec, f"{root}.inputs.{in_name}", name_hint=in_name)
        out_tensors = self._wire(nodes, tensors, outputs, f"{root}.nodes", f"{root}.outputs", prefix="")
        model_inputs = [tensors[n] for n in inputs_spec]
        return keras.Model(model_inputs if len(model_inputs) > 1 else model_inputs[0],
                           out_tensors if len(out_tensors) > 1 else out_tensors[0], name=name)

    # ------------------------------------------------------------------ graph
    def _wire(self, nodes: dict, tensors: dict, outputs: list, nodes_path: str, outputs_path: str, prefix: str,
              params: dict | None = None, depth: int = 0) -> list:
        """Validate references, order nodes topologically, create and call their layers."""
        known_inputs = set(tensors)
        for n in nodes:
            if n in known_inputs:
                raise ModelGraphError("a node has the same name as an input", path=f"{nodes_path}.{n}",
                                      fix="rename the node")
        deps: dict[str, list[str]] = {}
        for n, node in nodes.items():
            path = f"{nodes_path}.{n}"
            if not isinstance(node, dict):
                raise ModelGraphError("must be a mapping with `type` (or `block`) and `inputs`", path=path, value=node,
                                      fix="write `{type: Dense, units: 128, inputs: image}`")
            srcs = _as_list(node.get("inputs"))
            if not srcs:
                raise ModelGraphError("the node names no input", path=f"{path}.inputs",
                                      fix=f"add `inputs: <one of {', '.join(sorted(known_inputs | set(nodes)))}>`")
            for s in srcs:
                if not isinstance(s, str) or (s not in nodes and s not in known_inputs):
                    raise ModelGraphError(f"names a missing node or input{_did_you_mean(s, set(nodes) | known_inputs)}",
                                          path=f"{path}.inputs", value=s,
                                          fix=f"use one of {', '.join(sorted(known_inputs | set(nodes)))}")
            if "share" in node:
                other = node["share"]
                if other not in nodes or other == n:
                    raise ModelGraphError(f"`share` must name another node{_did_you_mean(other, nodes)}",
                                          path=f"{path}.share", value=other, fix="name the node whose layer (and weights) to reuse")
                extra = set(node) - {"share", "inputs"}
                if extra:
                    raise ModelGraphError("a node that shares another node's layer takes no layer arguments",
                                          path=f"{path}.{sorted(extra)[0]}", fix="remove it: the layer and its arguments are the shared node's")
            deps[n] = [s for s in srcs if s in nodes] + ([node["share"]] if "share" in node else [])
        for o in outputs:
            if not isinstance(o, str) or (o not in nodes and o not in known_inputs):
                raise ModelGraphError(f"is not a node{_did_you_mean(o, set(nodes) | known_inputs)}",
                                      path=outputs_path, value=o, fix=f"use one of {', '.join(sorted(nodes))}")
        order = _topological_order(deps, nodes_path)
        used = _reachable(outputs, deps)
        unused = [n for n in nodes if n not in used]
        if unused:
            raise ModelGraphError("the node is not used by any output (dead branch)", path=f"{nodes_path}.{unused[0]}",
                                  fix=f"feed it into a node on the way to {outputs_path}, add it to the outputs, or delete it")
        built_layers: dict[str, keras.layers.Layer] = {}
        for n in order:
            node = nodes[n]
            path = f"{nodes_path}.{n}"
            srcs = [tensors[s] for s in _as_list(node["inputs"])]
            if "share" in node:
                layer = built_layers.get(node["share"])
                if layer is None:
                    raise ModelGraphError("can only share a node made from a layer `type`, not a block",
                                          path=f"{path}.share", value=node["share"], fix="share a node with `type:`")
                tensors[n] = self._call(layer, srcs, path)
            elif "block" in node:
                tensors[n] = self._use_block(node, srcs, path, prefix=f"{prefix}{n}", depth=depth + 1, params=params)
            else:
                layer = self._make_layer(node, path, layer_name=f"{prefix}{n}", params=params)
                built_layers[n] = layer
                tensors[n] = self._call(layer, srcs, path)
        return [tensors[o] for o in outputs]

    def _use_block(self, use: dict, srcs: list, path: str, prefix: str, depth: int = 1, params: dict | None = None):
        if depth > MAX_BLOCK_DEPTH:
            raise ModelGraphError(f"blocks nest deeper than {MAX_BLOCK_DEPTH} levels (a block that uses itself?)",
                                  path=f"{path}.block", fix="remove the recursive block use")
        bname = use["block"]
        if bname not in self.blocks:
            raise ModelGraphError(f"no such block{_did_you_mean(bname, self.blocks)}", path=f"{path}.block", value=bname,
                                  fix=f"define it under {self.root}.blocks" + (f" or use one of {', '.join(sorted(self.blocks))}" if self.blocks else ""))
        if "type" in use:
            raise ModelGraphError("a node has either `type` or `block`, not both", path=f"{path}.type",
                                  fix="remove one of them")
        block = self.blocks[bname]
        bpath = f"{self.root}.blocks.{bname}"
        if not isinstance(block, dict):
            raise ModelGraphError("must be a mapping with params, inputs, nodes, outputs", path=bpath, fix="see the README")
        unknown = set(block) - BLOCK_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise ModelGraphError(f"unknown block key{_did_you_mean(k, BLOCK_KEYS)}", path=f"{bpath}.{k}",
                                  fix=f"a block has {', '.join(sorted(BLOCK_KEYS))}")
        defaults = dict(block.get("params") or {})
        given = {k: _substitute(v, params, f"{path}.{k}") for k, v in use.items() if k not in NODE_KEYS}
        bad = set(given) - set(defaults)
        if bad:
            k = sorted(bad)[0]
            raise ModelGraphError(f"block {bname!r} has no parameter {k!r}{_did_you_mean(k, defaults)}",
                                  path=f"{path}.{k}", fix=f"its parameters are {', '.join(sorted(defaults)) or 'none'}")
        values = {**defaults, **given}
        missing = [k for k, v in values.items() if v is None or v == "???"]
        if missing:
            raise ModelGraphError(f"block {bname!r} needs a value for parameter {missing[0]!r}", path=f"{path}.{missing[0]}",
                                  fix=f"add `{missing[0]}: <value>` to this block use")
        in_names = _as_list(block.get("inputs"))
        if len(in_names) != len(srcs):
            raise ModelGraphError(f"block {bname!r} takes {len(in_names)} input(s) ({', '.join(in_names)}) but gets {len(srcs)}",
                                  path=f"{path}.inputs", fix="name as many inputs as the block declares")
        tensors = dict(zip(in_names, srcs))
        outs = self._wire(block.get("nodes") or {}, tensors, _as_list(block.get("outputs")), f"{bpath}.nodes",
                          f"{bpath}.outputs", prefix=f"{prefix}_", params=values, depth=depth)
        if len(outs) != 1:
            raise ModelGraphError("a block used as a node must have exactly one output", path=f"{bpath}.outputs",
                                  fix="list a single node under outputs")
        return outs[0]

    # ----------------------------------------------------------------- layers
    def _make_input(self, name: str, spec: Any, path: str, name_hint: str):
        if not isinstance(spec, dict) or "shape" not in spec:
            raise ModelGraphError("an input needs `shape` (and optionally `dtype`)", path=path, value=spec,
                                  fix="write `{shape: [28, 28], dtype: uint8}`")
        extra = set(spec) - {"shape", "dtype"}
        if extra:
            raise ModelGraphError("unknown input key", path=f"{path}.{sorted(extra)[0]}", fix="an input has `shape` and `dtype`")
        shape = spec["shape"]
        if shape is None:
            shape = self.input_shapes.get(name)
            if shape is None:
                raise ModelGraphError("the shape is null (take it from the dataset) but no dataset shape is known here",
                                      path=f"{path}.shape", fix="give the shape explicitly, e.g. [28, 28]")
        if not isinstance(shape, (list, tuple)) or not all(
            (isinstance(d, int) and not isinstance(d, bool) and d > 0) or d is None for d in shape
        ):
            raise ModelGraphError("must be a list of positive integers (per-sample shape, without the batch axis)",
                                  path=f"{path}.shape", value=shape, fix="write e.g. [28, 28] or [512, 512, 3]")
        dtype = spec.get("dtype", "float32")
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except Exception:
            raise ModelGraphError("is not a dtype", path=f"{path}.dtype", value=dtype,
                                  fix="use uint8 for raw images, float32 otherwise") from None
        self._claim_name(name_hint, path)
        return keras.Input(shape=tuple(shape), dtype=dtype, name=name_hint)

    def _claim_name(self, name: str, path: str) -> None:
        if name in self.layer_names:
            raise ModelGraphError("two layers would get the same name", path=path, value=name,
                                  fix="rename the node or the input")
        self.layer_names.add(name)

    def _make_layer(self, spec: dict, path: str, layer_name: str | None, params: dict | None = None):
        if "type" not in spec:
            raise ModelGraphError("the layer spec has no `type`", path=path,
                                  fix="add `type: <a registry name>`; `python runner.py list_layers=true` lists them")
        type_name = spec["type"]
        if type_name not in layerlib.registry:
            raise ModelGraphError(layerlib.registry.miss_message(type_name, how=False), path=f"{path}.type",
                                  value=type_name, fix="use a registered name (`python runner.py list_layers=true`). "
                                  + layerlib.registry.how_to_register)
        cls = layerlib.registry.get(type_name)
        args = {k: _substitute(v, params, f"{path}.{k}") for k, v in spec.items() if k not in NODE_KEYS}
        if layer_name is not None:
            args.setdefault("name", layer_name)
        accepted, required = _constructor_params(cls)
        for k in args:
            if k not in accepted:
                raise ModelGraphError(f"{type_name} has no argument {k!r}{_did_you_mean(k, accepted)}",
                                      path=f"{path}.{k}", fix=f"its arguments are {', '.join(sorted(accepted - {'kwargs'}))}")
        missing = sorted(required - set(args))
        if missing:
            raise ModelGraphError(f"{type_name} needs the argument {missing[0]!r}", path=f"{path}.{missing[0]}",
                                  fix=f"add `{missing[0]}: <value>` to the layer spec")
        if args.get("name"):
            self._claim_name(args["name"], path)
        for k in ACTIVATION_ARGS & set(args):
            if isinstance(args[k], str):
                args[k] = self._function(args[k], f"{path}.{k}")
        if type_name == "Lambda" and isinstance(args.get("function"), str):
            args["function"] = self._function(args["function"], f"{path}.function")
        try:
            return cls(**args)
        except (ValueError, TypeError) as exc:
            raise ModelGraphError(f"{type_name} rejected its arguments: {exc}", path=path,
                                  fix="correct the argument named in the message") from None

    def _function(self, name: str, path: str):
        try:
            return layerlib.get_function(name)
        except KeyError as exc:
            raise ModelGraphError(str(exc), path=path, value=name,
                                  fix="use one of the names above (`python runner.py list_layers=true` lists them) "
                                      "or register your own function") from None

    def _call(self, layer, srcs: list, path: str, shown=None):
        try:
            return layer(srcs[0] if len(srcs) == 1 else srcs)
        except Exception as exc:  # Keras raises ValueError/TypeError, TF may raise its own
            shapes = ", ".join(str(tuple(s.shape)) for s in srcs)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelGraphError(f"{type(shown or layer).__name__} cannot take input(s) of shape {shapes}: {msg}", path=path,
                                  fix="make the layer's arguments match the incoming shape, or change the node's inputs") from None


def _substitute(value: Any, params: dict | None, path: str) -> Any:
    """Replace ``$name`` strings (block parameters) recursively."""
    if isinstance(value, str) and value.startswith("$") and len(value) > 1 and value[1:].isidentifier():
        if params is None or value[1:] not in params:
            raise ModelGraphError(f"refers to block parameter {value[1:]!r}, which is not defined here", path=path,
                                  value=value, fix="declare it under the block's `params:` (or remove the $)")
        return params[value[1:]]
    if isinstance(value, list):
        return [_substitute(v, params, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, params, f"{path}.{k}") for k, v in value.items()}
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _topological_order(deps: dict[str, list[str]], nodes_path: str) -> list[str]:
    order, state = [], {}

    def visit(n: str, stack: list[str]):
        if state.get(n) == "done":
            return
        if state.get(n) == "active":
            cycle = stack[stack.index(n):] + [n]
            raise ModelGraphError(f"the graph has a cycle: {' -> '.join(cycle)}", path=f"{nodes_path}.{n}.inputs",
                                  fix="a node may only take inputs from nodes that do not depend on it")
        state[n] = "active"
        for d in deps[n]:
            visit(d, stack + [n])
        state[n] = "done"
        order.append(n)

    for n in deps:
        visit(n, [])
    return order


def _reachable(outputs: list[str], deps: dict[str, list[str]]) -> set[str]:
    seen, todo = set(), [o for o in outputs if o in deps]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(deps[n])
    return seen
