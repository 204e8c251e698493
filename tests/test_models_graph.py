"""experiments.models.graph: node order (graphlib), cycles named by their YAML path, reachability."""

from __future__ import annotations

import pytest
import yaml

from experiments.errors import ModelGraphError
from experiments.models import build_model, count_params
from experiments.models.graph import _topological_order

GRAPH = "name: g\ninputs: {image: {shape: [8]}}\n"


def _error(text: str) -> str:
    with pytest.raises(ModelGraphError) as info:
        build_model(yaml.safe_load(text))
    return str(info.value)


def test_order_puts_inputs_first_and_otherwise_keeps_declaration_order():
    nodes = {n: {"inputs": "image"} for n in "abcd"}
    assert _topological_order({"a": [], "b": ["a"], "c": [], "d": ["b", "c"]}, nodes, "p") == ["a", "b", "c", "d"]
    assert _topological_order({"d": ["b", "c"], "b": ["a"], "a": [], "c": []}, nodes, "p") == ["a", "b", "c", "d"]
    assert _topological_order({"out": ["h2"], "h2": ["h1"], "h1": []}, nodes, "p") == ["h1", "h2", "out"]


def test_nodes_declared_before_their_inputs_build():
    model = build_model(
        yaml.safe_load(
            GRAPH + "nodes:\n"
            "  out: {type: Dense, units: 2, inputs: h2}\n"
            "  h2: {type: Dense, units: 4, inputs: h1}\n"
            "  h1: {type: Dense, units: 4, inputs: image}\n"
            "outputs: [out]"
        )
    )
    assert count_params(model)["total"] == (8 * 4 + 4) + (4 * 4 + 4) + (4 * 2 + 2)


def test_cycle_names_the_node_path_and_the_cycle():
    msg = _error(
        GRAPH + "nodes: {a: {type: Dense, units: 8, inputs: [b]}, b: {type: Dense, units: 8, inputs: a}}\noutputs: [b]"
    )
    assert msg.startswith("model.nodes.b.inputs: the graph has a cycle: a -> b -> a"), msg
    assert "Fix:" in msg and "\n" not in msg


def test_a_node_feeding_itself_is_a_cycle():
    msg = _error(GRAPH + "nodes: {a: {type: Dense, units: 8, inputs: [image, a]}}\noutputs: [a]")
    assert msg.startswith("model.nodes.a.inputs: the graph has a cycle: a -> a"), msg


def test_cycle_through_share_names_the_share_or_the_inputs():
    msg = _error(
        GRAPH + "nodes: {a: {type: Dense, units: 8, inputs: image}, b: {share: c, inputs: a}, "
        "c: {type: Dense, units: 8, inputs: b}}\noutputs: [c]"
    )
    assert msg.startswith(("model.nodes.b.share:", "model.nodes.c.inputs:")), msg
    assert "cycle" in msg


def test_cycle_inside_a_block_names_the_block_path():
    msg = _error(
        "name: g\ninput: {shape: [8]}\nblocks: {loop: {inputs: [x], nodes: {p: {type: Dense, units: 8, "
        "inputs: [q]}, q: {type: Dense, units: 8, inputs: p}}, outputs: [q]}}\nlayers: [{block: loop}]"
    )
    assert msg.startswith("model.blocks.loop.nodes."), msg
    assert "cycle" in msg


def test_dead_branch_after_a_valid_order():
    msg = _error(
        GRAPH + "nodes: {h: {type: Dense, units: 4, inputs: image}, dead: {type: Dense, units: 2, "
        "inputs: h}}\noutputs: [h]"
    )
    assert msg.startswith("model.nodes.dead:") and "not used by any output" in msg
