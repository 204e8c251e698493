"""Wire checked layer specs into a Keras model: the sequential form, the graph form and blocks.

:class:`GraphBuilder` holds what one model's construction shares: the
``blocks:`` definitions, the dataset's input shapes and the layer names
already taken.  The nodes of a graph or block are checked (references,
``share``, cycles, dead branches) before any of its layers is made, then made
in dependency order, the earliest declared node first when several are ready.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Mapping
from typing import Any

import keras

from experiments.errors import ModelGraphError
from experiments.models.specs import NODE_KEYS, as_list, did_you_mean, make_input, make_layer, substitute

BLOCK_KEYS = {"description", "params", "inputs", "nodes", "outputs"}
MAX_BLOCK_DEPTH = 8


class GraphBuilder:
    """Turns validated specs into wired Keras layers; one instance per model.

    Args:
        blocks: the ``blocks:`` mapping (block name -> block).
        root: the config path of the model, used in error messages.
        input_shapes: shapes for inputs declared with ``shape: null``, by input name.
    """

    def __init__(self, blocks: dict, root: str, input_shapes: Mapping[str, tuple]):
        self.blocks = blocks
        self.root = root
        self.input_shapes = input_shapes
        self.layer_names: set[str] = set()
        #: layer name -> the block uses it was made in, outermost first (the model picture draws them as boxes)
        self.block_of: dict[str, tuple[str, ...]] = {}
        self._uses: list[str] = []

    # ------------------------------------------------------------ model forms
    def sequential(self, spec: dict, name: str) -> keras.Model:
        root = self.root
        items = spec["layers"]
        if not isinstance(items, list) or not items:
            raise ModelGraphError(
                "must be a non-empty list of layer specs",
                path=f"{root}.layers",
                fix="write `layers:` followed by `- {type: Dense, units: 10}` items",
            )
        inp = self._input("input", spec.get("input"), f"{root}.input")
        if not any(isinstance(it, dict) and "block" in it for it in items):
            # Pure layer list: a real keras.Sequential, as in the lecture's section 6.
            model = keras.Sequential(name=name)
            model.add(inp)
            prev = inp
            for i, item in enumerate(items):
                path = f"{root}.layers.{i}"
                layer = self._layer(self._check_item(item, path), path)
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
                x = self._call(self._layer(item, path), [x], path)
        return keras.Model(inp, x, name=name)

    def graph(self, spec: dict, name: str) -> keras.Model:
        root = self.root
        inputs_spec = spec.get("inputs")
        if not isinstance(inputs_spec, dict) or not inputs_spec:
            raise ModelGraphError(
                "the graph form needs named inputs",
                path=f"{root}.inputs",
                fix="write `inputs: {image: {shape: [28, 28], dtype: uint8}}`",
            )
        nodes = spec.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            raise ModelGraphError(
                "must be a non-empty mapping of node name to layer spec",
                path=f"{root}.nodes",
                fix="write `nodes: {hidden: {type: Dense, units: 128, inputs: image}}`",
            )
        outputs = as_list(spec.get("outputs"))
        if not outputs:
            raise ModelGraphError(
                "the graph form needs `outputs`",
                path=f"{root}.outputs",
                fix="name the node(s) whose output is the model's, e.g. `outputs: [out]`",
            )
        tensors = {n: self._input(n, s, f"{root}.inputs.{n}") for n, s in inputs_spec.items()}
        out_tensors = self._wire(nodes, tensors, outputs, f"{root}.nodes", f"{root}.outputs", prefix="")
        model_inputs = [tensors[n] for n in inputs_spec]
        return keras.Model(
            model_inputs if len(model_inputs) > 1 else model_inputs[0],
            out_tensors if len(out_tensors) > 1 else out_tensors[0],
            name=name,
        )

    # ------------------------------------------------------------------ graph
    def _wire(
        self,
        nodes: dict,
        tensors: dict,
        outputs: list,
        nodes_path: str,
        outputs_path: str,
        prefix: str,
        params: dict | None = None,
        depth: int = 0,
    ) -> list:
        """Validate references, order nodes topologically, create and call their layers."""
        deps = self._check_nodes(nodes, set(tensors), nodes_path)
        for o in outputs:
            if not isinstance(o, str) or (o not in nodes and o not in tensors):
                raise ModelGraphError(
                    f"is not a node{did_you_mean(o, set(nodes) | set(tensors))}",
                    path=outputs_path,
                    value=o,
                    fix=f"use one of {', '.join(sorted(nodes))}",
                )
        order = _topological_order(deps, nodes, nodes_path)
        used = _reachable(outputs, deps)
        unused = [n for n in nodes if n not in used]
        if unused:
            raise ModelGraphError(
                "the node is not used by any output (dead branch)",
                path=f"{nodes_path}.{unused[0]}",
                fix=f"feed it into a node on the way to {outputs_path}, add it to the outputs, or delete it",
            )
        built_layers: dict[str, keras.layers.Layer] = {}
        for n in order:
            node = nodes[n]
            path = f"{nodes_path}.{n}"
            srcs = [tensors[s] for s in as_list(node["inputs"])]
            if "share" in node:
                layer = built_layers.get(node["share"])
                if layer is None:
                    raise ModelGraphError(
                        "can only share a node made from a layer `type`, not a block",
                        path=f"{path}.share",
                        value=node["share"],
                        fix="share a node with `type:`",
                    )
                tensors[n] = self._call(layer, srcs, path)
            elif "block" in node:
                tensors[n] = self._use_block(node, srcs, path, prefix=f"{prefix}{n}", depth=depth + 1, params=params)
            else:
                layer = self._layer(node, path, layer_name=f"{prefix}{n}", params=params)
                built_layers[n] = layer
                tensors[n] = self._call(layer, srcs, path)
        return [tensors[o] for o in outputs]

    def _check_nodes(self, nodes: dict, known_inputs: set[str], nodes_path: str) -> dict[str, list[str]]:
        """Check each node's references; return the nodes each node depends on (inputs, then `share`)."""
        for n in nodes:
            if n in known_inputs:
                raise ModelGraphError(
                    "a node has the same name as an input", path=f"{nodes_path}.{n}", fix="rename the node"
                )
        names = known_inputs | set(nodes)
        deps: dict[str, list[str]] = {}
        for n, node in nodes.items():
            path = f"{nodes_path}.{n}"
            if not isinstance(node, dict):
                raise ModelGraphError(
                    "must be a mapping with `type` (or `block`) and `inputs`",
                    path=path,
                    value=node,
                    fix="write `{type: Dense, units: 128, inputs: image}`",
                )
            srcs = as_list(node.get("inputs"))
            if not srcs:
                raise ModelGraphError(
                    "the node names no input",
                    path=f"{path}.inputs",
                    fix=f"add `inputs: <one of {', '.join(sorted(names))}>`",
                )
            for s in srcs:
                if not isinstance(s, str) or s not in names:
                    raise ModelGraphError(
                        f"names a missing node or input{did_you_mean(s, names)}",
                        path=f"{path}.inputs",
                        value=s,
                        fix=f"use one of {', '.join(sorted(names))}",
                    )
            if "share" in node:
                other = node["share"]
                if other not in nodes or other == n:
                    raise ModelGraphError(
                        f"`share` must name another node{did_you_mean(other, nodes)}",
                        path=f"{path}.share",
                        value=other,
                        fix="name the node whose layer (and weights) to reuse",
                    )
                extra = set(node) - {"share", "inputs"}
                if extra:
                    raise ModelGraphError(
                        "a node that shares another node's layer takes no layer arguments",
                        path=f"{path}.{sorted(extra)[0]}",
                        fix="remove it: the layer and its arguments are the shared node's",
                    )
            deps[n] = [s for s in srcs if s in nodes] + ([node["share"]] if "share" in node else [])
        return deps

    def _use_block(self, use: dict, srcs: list, path: str, prefix: str, depth: int = 1, params: dict | None = None):
        if depth > MAX_BLOCK_DEPTH:
            raise ModelGraphError(
                f"blocks nest deeper than {MAX_BLOCK_DEPTH} levels (a block that uses itself?)",
                path=f"{path}.block",
                fix="remove the recursive block use",
            )
        bname = use["block"]
        if bname not in self.blocks:
            raise ModelGraphError(
                f"no such block{did_you_mean(bname, self.blocks)}",
                path=f"{path}.block",
                value=bname,
                fix=f"define it under {self.root}.blocks"
                + (f" or use one of {', '.join(sorted(self.blocks))}" if self.blocks else ""),
            )
        if "type" in use:
            raise ModelGraphError(
                "a node has either `type` or `block`, not both", path=f"{path}.type", fix="remove one of them"
            )
        block = self.blocks[bname]
        bpath = f"{self.root}.blocks.{bname}"
        if not isinstance(block, dict):
            raise ModelGraphError(
                "must be a mapping with params, inputs, nodes, outputs", path=bpath, fix="see docs/models.md"
            )
        unknown = set(block) - BLOCK_KEYS
        if unknown:
            k = sorted(unknown)[0]
            raise ModelGraphError(
                f"unknown block key{did_you_mean(k, BLOCK_KEYS)}",
                path=f"{bpath}.{k}",
                fix=f"a block has {', '.join(sorted(BLOCK_KEYS))}",
            )
        defaults = dict(block.get("params") or {})
        given = {k: substitute(v, params, f"{path}.{k}") for k, v in use.items() if k not in NODE_KEYS}
        bad = set(given) - set(defaults)
        if bad:
            k = sorted(bad)[0]
            raise ModelGraphError(
                f"block {bname!r} has no parameter {k!r}{did_you_mean(k, defaults)}",
                path=f"{path}.{k}",
                fix=f"its parameters are {', '.join(sorted(defaults)) or 'none'}",
            )
        values = {**defaults, **given}
        missing = [k for k, v in values.items() if v is None or v == "???"]
        if missing:
            raise ModelGraphError(
                f"block {bname!r} needs a value for parameter {missing[0]!r}",
                path=f"{path}.{missing[0]}",
                fix=f"add `{missing[0]}: <value>` to this block use",
            )
        in_names = as_list(block.get("inputs"))
        if len(in_names) != len(srcs):
            raise ModelGraphError(
                f"block {bname!r} takes {len(in_names)} input(s) ({', '.join(in_names)}) but gets {len(srcs)}",
                path=f"{path}.inputs",
                fix="name as many inputs as the block declares",
            )
        tensors = dict(zip(in_names, srcs))
        self._uses.append(f"{prefix}: {bname}")
        try:
            outs = self._wire(
                block.get("nodes") or {},
                tensors,
                as_list(block.get("outputs")),
                f"{bpath}.nodes",
                f"{bpath}.outputs",
                prefix=f"{prefix}_",
                params=values,
                depth=depth,
            )
        finally:
            self._uses.pop()
        if len(outs) != 1:
            raise ModelGraphError(
                "a block used as a node must have exactly one output",
                path=f"{bpath}.outputs",
                fix="list a single node under outputs",
            )
        return outs[0]

    # ----------------------------------------------------------------- layers
    def _check_item(self, item: Any, path: str) -> dict:
        """An item of the sequential form's ``layers:`` list."""
        if not isinstance(item, dict):
            raise ModelGraphError(
                "must be a mapping with a `type` (or `block`) key",
                path=path,
                value=item,
                fix="write it as `{type: Dense, units: 128}`",
            )
        bad = sorted({"inputs", "share"} & set(item))
        if bad:
            raise ModelGraphError(
                f"`{bad[0]}` is only meaningful in the graph form (`nodes:`)",
                path=f"{path}.{bad[0]}",
                fix="remove it, or switch to the graph form",
            )
        return item

    def _input(self, name: str, spec: Any, path: str):
        return make_input(name, spec, path, self._claim_name, self.input_shapes)

    def _layer(self, spec: dict, path: str, layer_name: str | None = None, params: dict | None = None):
        layer = make_layer(spec, path, self._claim_name, layer_name=layer_name, params=params)
        if self._uses:
            self.block_of[layer.name] = tuple(self._uses)
        return layer

    def _claim_name(self, name: str, path: str) -> None:
        if name in self.layer_names:
            raise ModelGraphError(
                "two layers would get the same name", path=path, value=name, fix="rename the node or the input"
            )
        self.layer_names.add(name)

    def _call(self, layer, srcs: list, path: str, shown=None):
        """``layer(srcs)``; a failure names the layer class (``shown``'s if given) and the input shapes."""
        try:
            return layer(srcs[0] if len(srcs) == 1 else srcs)
        except Exception as exc:  # Keras raises ValueError/TypeError, TF may raise its own
            shapes = ", ".join(str(tuple(s.shape)) for s in srcs)
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelGraphError(
                f"{type(shown or layer).__name__} cannot take input(s) of shape {shapes}: {msg}",
                path=path,
                fix="make the layer's arguments match the incoming shape, or change the node's inputs",
            ) from None


def _topological_order(deps: dict[str, list[str]], nodes: dict, nodes_path: str) -> list[str]:
    """Every node after the nodes it depends on; among the ready ones, the earliest declared first."""
    sorter = graphlib.TopologicalSorter(deps)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]  # [a, b, ..., a]: each node feeds the next
        feeder, node = cycle[0], cycle[1]
        key = "inputs" if feeder in as_list(nodes[node].get("inputs")) else "share"
        raise ModelGraphError(
            f"the graph has a cycle: {' -> '.join(cycle)} (each node feeds the next)",
            path=f"{nodes_path}.{node}.{key}",
            fix="a node may only take inputs from nodes that do not depend on it",
        ) from None
    rank = {n: i for i, n in enumerate(deps)}
    ready: list[tuple[int, str]] = []
    order: list[str] = []
    while sorter.is_active():
        for n in sorter.get_ready():
            heapq.heappush(ready, (rank[n], n))
        _, n = heapq.heappop(ready)
        order.append(n)
        sorter.done(n)
    return order


def _reachable(outputs: list[str], deps: dict[str, list[str]]) -> set[str]:
    """The nodes that some output depends on (the outputs included)."""
    seen, todo = set(), [o for o in outputs if o in deps]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(deps[n])
    return seen
