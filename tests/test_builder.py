"""YAML model graphs: the shipped models, the graph features, and every validation error."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

import layers
from experiments.errors import ModelGraphError
from experiments.models import build_model, count_params
from tests.conftest import compose, run_cli

SHIPPED = {
    "lambda_mlp": 101_770,  # lecture section 4
    "class_mlp": 134_794,  # lecture section 6, Sequential
    "class_mlp_functional": 134_794,  # lecture section 6, Functional
    "conv_binary": 2_081_697,  # lecture section 3.2
    "rectifier_mlp": 103_050,  # 784*128+128 + 256*10+10: the rectifier doubles the width
}


@pytest.mark.parametrize("name,params", SHIPPED.items())
def test_shipped_models_build_with_the_lecture_counts(name, params):
    model = build_model(compose(f"model={name}").model)
    assert count_params(model) == {"total": params, "trainable": params, "non_trainable": 0}


def test_conv_binary_layer_shapes_match_lecture():
    model = build_model(compose("model=conv_binary").model)
    shapes = [tuple(layer.output.shape) for layer in model.layers]
    assert (None, 510, 510, 32) in shapes and (None, 255, 255, 32) in shapes and (None, 2_080_800) in shapes
    assert [layer.count_params() for layer in model.layers if layer.count_params()] == [896, 2_080_801]


def test_sequential_and_functional_section_6_are_the_same_network():
    seq = build_model(compose("model=class_mlp").model)
    fun = build_model(compose("model=class_mlp_functional").model)
    assert isinstance(seq, keras.Sequential) and not isinstance(fun, keras.Sequential)

    def per_layer(m):
        return [
            (type(layer).__name__, layer.count_params()) for layer in m.layers if type(layer).__name__ != "InputLayer"
        ]

    assert (
        per_layer(seq)
        == per_layer(fun)
        == [("PreProcess", 0), ("SimpleDense", 100_480), ("ResidualDense", 33_024), ("SimpleDense", 1_290)]
    )


def test_activation_override_reaches_the_built_layers():
    lam = build_model(compose("model=lambda_mlp", "model.activation=relu").model)
    hidden_lambda = [layer for layer in lam.layers if isinstance(layer, keras.layers.Lambda)][-1]
    assert hidden_lambda.function is keras.activations.relu
    lam_abs = build_model(compose("model=lambda_mlp").model)
    assert [layer for layer in lam_abs.layers if isinstance(layer, keras.layers.Lambda)][-1].function is layers.absolute
    cls = build_model(compose("model=class_mlp", "model.activation=abs").model)
    assert cls.layers[1].activation is layers.absolute and cls.layers[2].activation is layers.absolute
    assert cls.layers[3].activation is keras.activations.softmax  # the output layer keeps its own


def test_block_used_twice_has_two_sets_of_weights_and_shared_layer_has_one():
    model = build_model(compose("model=residual_graph").model)
    names = {layer.name: layer for layer in model.layers}
    assert names["res1_z1"] is not names["res2_z1"]
    assert not np.array_equal(np.asarray(names["res1_z1"].kernel), np.asarray(names["res2_z1"].kernel))
    # proj and proj_skip are one layer called twice: one set of weights, two call sites.
    assert "proj_skip" not in names and len(names["proj"]._inbound_nodes) == 2
    assert len(names["proj"].weights) == 2
    expected = 100_480 + 2 * (2 * 16_512) + 4_128 + 650  # hidden, two blocks, proj once, out
    assert count_params(model)["total"] == expected


def test_graph_with_concatenate_and_block_in_sequential_form():
    spec = yaml.safe_load("""
    name: mixed
    blocks:
      res: {params: {units: 16}, inputs: [x], nodes: {d: {type: Dense, units: $units, inputs: x},
            s: {type: Add, inputs: [x, d]}}, outputs: [s]}
    input: {shape: [16]}
    layers:
      - {block: res}
      - {block: res, units: 16}
      - {type: Dense, units: 2}
    """)
    model = build_model(spec)
    assert count_params(model)["total"] == 2 * (16 * 16 + 16) + 34
    x = np.ones((3, 16), dtype="float32")
    assert model(x).shape == (3, 2)


def test_user_layer_from_a_registry_module():
    layers.load_modules(["tests.fixtures.user_layers"])
    model = build_model({"name": "u", "input": {"shape": [2]}, "layers": [{"type": "Scale", "factor": 4.0}]})
    np.testing.assert_allclose(model(np.ones((1, 2), dtype="float32")), [[4.0, 4.0]])


SEQ = "name: bad\ninput: {shape: [28, 28], dtype: uint8}\n"
GRAPH = "name: bad\ninputs: {image: {shape: [8], dtype: float32}}\n"
BAD = {
    "unknown layer": (SEQ + "layers: [{type: Flaten}]", "model.layers.0.type", "did you mean 'Flatten'"),
    "unknown activation": (
        SEQ + "layers: [{type: Flatten}, {type: Dense, units: 4, activation: rleu}]",
        "model.layers.1.activation",
        "did you mean 'relu'",
    ),
    "unknown lambda function": (
        SEQ + "layers: [{type: Lambda, function: sqaure}]",
        "model.layers.0.function",
        "did you mean 'square'",
    ),
    "unknown argument": (
        SEQ + "layers: [{type: Flatten}, {type: Dense, unit: 4}]",
        "model.layers.1.unit",
        "Dense has no argument 'unit'; did you mean 'units'",
    ),
    "missing argument": (
        SEQ + "layers: [{type: Flatten}, {type: Dense}]",
        "model.layers.1.units",
        "Dense needs the argument 'units'",
    ),
    "wrong type": (
        SEQ + "layers: [{type: Flatten}, {type: Dense, units: many}]",
        "model.layers.1",
        "Dense rejected its arguments",
    ),
    "missing input node": (
        GRAPH + "nodes: {h: {type: Dense, units: 4, inputs: imgae}}\noutputs: [h]",
        "model.nodes.h.inputs",
        "did you mean 'image'",
    ),
    "cycle": (
        GRAPH + "nodes: {a: {type: Dense, units: 8, inputs: [b]}, b: {type: Dense, units: 8, inputs: a}}\noutputs: [b]",
        "model.nodes.",
        "cycle",
    ),
    "unused node": (
        GRAPH + "nodes: {h: {type: Dense, units: 4, inputs: image}, dead: {type: Dense, units: 2, "
        "inputs: image}}\noutputs: [h]",
        "model.nodes.dead",
        "not used by any output",
    ),
    "output not a node": (
        GRAPH + "nodes: {h: {type: Dense, units: 4, inputs: image}}\noutputs: [hh]",
        "model.outputs",
        "did you mean 'h'",
    ),
    "shape mismatch": (
        GRAPH + "nodes: {r: {type: ResidualDense, units: 16, inputs: image}}\noutputs: [r]",
        "model.nodes.r",
        "units=16 but the input is 8 wide",
    ),
    "add of different widths": (
        GRAPH + "nodes: {a: {type: Dense, units: 4, inputs: image}, s: {type: Add, inputs: [a, image]}}\noutputs: [s]",
        "model.nodes.s",
        "cannot take input",
    ),
    "no layers nor nodes": ("name: bad\ninput: {shape: [3]}", "model", "neither `layers`"),
    "typo in a top-level key": (SEQ + "layers: [{type: Flatten}]\nblokcs: {}", "model.blokcs", "did you mean 'blocks'"),
    "unknown block": (SEQ + "layers: [{block: resid}]", "model.layers.0.block", "no such block"),
    "bad block parameter": (
        SEQ + "blocks: {b: {params: {units: 4}, inputs: [x], nodes: {d: {type: Dense, "
        "units: $units, inputs: x}}, outputs: [d]}}\nlayers: [{type: Flatten}, "
        "{block: b, unitz: 3}]",
        "model.layers.1.unitz",
        "has no parameter 'unitz'",
    ),
    "bad input shape": (
        "name: bad\ninput: {shape: [28, -1]}\nlayers: [{type: Flatten}]",
        "model.input.shape",
        "positive integers",
    ),
    "share with arguments": (
        GRAPH + "nodes: {a: {type: Dense, units: 8, inputs: image}, b: {share: a, units: 3, inputs: a}}\noutputs: [b]",
        "model.nodes.b.units",
        "takes no layer arguments",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_every_validation_error_names_the_path_and_a_fix(case):
    text, path, fragment = BAD[case]
    with pytest.raises(ModelGraphError) as info:
        build_model(OmegaConf.create({"model": yaml.safe_load(text)}).model)
    msg = str(info.value)
    assert msg.startswith(path), msg
    assert fragment in msg, msg
    assert "\n" not in msg and len(msg) < 700, msg  # one short paragraph


@pytest.mark.slow
def test_dry_run_prints_config_and_summary_without_training(tmp_path, store):
    proc = run_cli(
        "dry_run=true", "model=class_mlp_functional", "model.activation=elu", f"tracking.uri={store}", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "activation: elu" in out
    assert "residual (ResidualDense)" in out and "33,024" in out
    assert "Total params: 134,794" in out
    assert "builds with 134,794 params" in out and "Nothing trained or logged" in out
    assert not (tmp_path / "mlflow.db").exists()
