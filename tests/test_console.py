"""The ``layerlab`` console script: its subcommands, each the tool it names (the ``python -m`` forms stay)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from experiments.console import TOOLS, config_options
from experiments.console import run as main
from tests.conftest import ROOT

LAYERLAB = Path(sys.executable).parent / "layerlab"  # installed by `pip install -e .` ([project.scripts])


def test_layerlab_help_lists_every_subcommand():
    proc = subprocess.run([str(LAYERLAB), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for name in ("compare", "doctor", "schema", "upload", "fetch", "check-layer", "list"):
        assert re.search(rf"^    {name}\b", proc.stdout, re.M), name


def test_layerlab_schema_writes_the_model_json_schema(tmp_path):
    out = tmp_path / "model.schema.json"
    proc = subprocess.run([str(LAYERLAB), "schema", "--out", str(out)], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(out.read_text())
    assert "Dense" in json.dumps(schema) and f"wrote {out}" in proc.stdout


def test_each_tool_has_its_own_help(capsys):
    for name in TOOLS:
        try:
            main([name, "--help"])
        except SystemExit as exc:  # argparse's --help
            assert exc.code == 0
        assert "usage:" in capsys.readouterr().out


def test_layerlab_list_shows_layers_a_layers_arguments_and_config_options(capsys):
    assert main(["list"]) == 0
    assert "Layers (type: in model YAML):" in capsys.readouterr().out
    assert main(["list", "Dense"]) == 0
    assert "units" in capsys.readouterr().out
    assert main(["list", "model"]) == 0
    out = capsys.readouterr().out
    assert "lambda_mlp" in out and out.startswith("model: ")
    assert config_options("dataset") == sorted(p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml"))
    assert main(["list", "NoSuchLayerAnywhere"]) == 2
    assert "no layer or function matches" in capsys.readouterr().err
