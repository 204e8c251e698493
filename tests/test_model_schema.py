"""The JSON Schema of the model files: in sync with the registry, every shipped model valid, typos caught.

The committed copy (conf/model/model.schema.json) is what editors read; these
tests hold it to the live registry and to what the builder accepts.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

SCHEMA_FILE = ROOT / "conf" / "model" / "model.schema.json"
MODEL_FILES = sorted((ROOT / "conf" / "model").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema=./model.schema.json"
REGENERATE = "python -m experiments.schema --out conf/model/model.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _schema_cli(*args: str) -> subprocess.CompletedProcess:
    # A fresh process: the registry is global, and other tests load user modules into it.
    return subprocess.run(
        [sys.executable, "-m", "experiments.schema", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _errors(validator, model: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(model)]


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "model" / f"{name}.yaml").read_text())


@pytest.mark.slow  # a real CLI process: the registry is global and other tests load user modules into it
def test_committed_schema_is_the_live_registrys():
    proc = _schema_cli()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == SCHEMA_FILE.read_text(), (
        f"conf/model/model.schema.json is out of date with the layer registry; regenerate it: {REGENERATE}"
    )
    schema = json.loads(proc.stdout)
    assert {"Dense", "Conv2D", "ResidualDense", "PreProcess", "SimpleDense", "Lambda"} <= set(
        schema["definitions"]["layer"]["properties"]["type"]["anyOf"][0]["enum"]
    )


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_every_shipped_model_validates_and_names_the_schema(path: Path, validator):
    assert path.read_text().splitlines()[0] == HEADER, f"{path.name}: the first line must be `{HEADER}`"
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


def test_a_misspelled_layer_fails(validator):
    model = _load("residual_graph")
    model["nodes"]["proj"]["type"] = "Dence"
    assert any(e.startswith("nodes.proj.type") for e in _errors(validator, model))
    seq = _load("lambda_mlp")
    seq["layers"][0]["type"] = "Flaten"
    assert any(e.startswith("layers.0.type") for e in _errors(validator, seq))


def test_a_misspelled_argument_fails_in_layers_nodes_and_blocks(validator):
    seq = _load("lambda_mlp")
    seq["layers"][2]["unit"] = 128
    assert any("'unit' was unexpected" in e for e in _errors(validator, seq))
    graph = _load("residual_graph")
    graph["blocks"]["dense_residual"]["nodes"]["z1"]["unitz"] = "$units"
    assert any(
        e.startswith("blocks.dense_residual.nodes.z1") and "'unitz' was unexpected" in e
        for e in _errors(validator, graph)
    )


def test_wrong_values_and_form_mistakes_fail(validator):
    seq = _load("lambda_mlp")
    seq["layers"][2]["units"] = "many"  # a string that is no interpolation
    seq["layers"][3]["function"] = "rescal"  # no such function
    errors = _errors(validator, seq)
    assert any(e.startswith("layers.2.units") for e in errors) and any(
        e.startswith("layers.3.function") for e in errors
    )
    both = {**_load("lambda_mlp"), "nodes": {"x": {"type": "Dense", "units": 2, "inputs": "input"}}}
    assert _errors(validator, both), "a model with both `layers` and `nodes` is invalid"
    node = _load("residual_graph")
    del node["nodes"]["proj"]["inputs"]
    assert _errors(validator, node), "a graph node needs `inputs`"
    seq = _load("lambda_mlp")
    seq["layers"][0]["inputs"] = "image"
    assert _errors(validator, seq), "`inputs` is for the graph form only"


def test_interpolations_and_block_parameters_stand_for_any_value(validator):
    seq = _load("lambda_mlp")
    seq["hidden_units"] = 64
    seq["layers"][2]["units"] = "${model.hidden_units}"
    seq["layers"][4]["activation"] = "${model.activation}"
    seq["input"]["shape"] = ["${model.side}", 28]
    assert _errors(validator, seq) == []
    graph = _load("residual_graph")
    block = copy.deepcopy(graph["blocks"]["dense_residual"])
    block["params"]["use_bias"] = True
    block["nodes"]["z2"]["use_bias"] = "$use_bias"
    graph["blocks"]["dense_residual"] = block
    assert _errors(validator, graph) == []


@pytest.mark.slow
def test_a_users_registered_layers_get_into_the_schema(tmp_path):
    out = tmp_path / "model.schema.json"
    proc = _schema_cli("--modules", "tests.fixtures.user_layers", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "model.schema.json" in proc.stdout
    validator = jsonschema.Draft7Validator(json.loads(out.read_text()))
    model = _load("lambda_mlp")
    model["layers"].insert(2, {"type": "Scale", "factor": 0.5})
    assert _errors(validator, model) == []
    model["layers"][2] = {"type": "Scale", "factr": 0.5}
    assert any("'factr' was unexpected" in e for e in _errors(validator, model))
    bad = _schema_cli("--modules", "no_such_pkg.layers")
    assert bad.returncode == 2 and "layerlab: error: --modules" in bad.stderr and "Traceback" not in bad.stderr
