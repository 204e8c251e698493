"""The model picture: blocks framed, written by dry runs and runs, one line (and nothing else) without Graphviz."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from experiments.models import build_model
from experiments.models.picture import MISSING, draw_model, model_dot
from tests.conftest import TINY, compose, run_cli

PNG = b"\x89PNG"
needs_dot = pytest.mark.skipif(
    not __import__("shutil").which("dot"),
    reason="Graphviz's dot is missing: make install (scripts/install_graphviz.sh)",
)


def _model(name: str, *overrides: str):
    return build_model(compose(f"model={name}", *overrides).model)


def test_each_block_use_is_a_frame_around_its_layers():
    dot = model_dot(_model("residual_graph"))
    frames = {sg.get_label(): {n.get_name() for n in sg.get_nodes()} for sg in dot.get_subgraphs()}
    assert set(frames) == {"res1: dense_residual", "res2: dense_residual"}
    assert all(len(nodes) == 5 for nodes in frames.values())  # z1, a1, z2, zx, a2: each use has its own layers
    outside = {n.get_name() for n in dot.get_nodes()}
    assert outside and not outside & set().union(*frames.values())
    assert "res1_z1</b> (Dense)" in dot.to_string() and "Output shape" in dot.to_string()


def test_nested_block_uses_are_nested_frames():
    model = _model(
        "residual_graph",
        "+model.blocks.outer={params: {units: 128, activation: relu}, inputs: [x], "
        "nodes: {inner: {block: dense_residual, units: $units, activation: $activation, inputs: x}}, "
        "outputs: [inner]}",
        "model.nodes.res2.block=outer",
    )
    dot = model_dot(model)
    outer = next(sg for sg in dot.get_subgraphs() if sg.get_label() == "res2: outer")
    assert [sg.get_label() for sg in outer.get_subgraphs()] == ["res2_inner: dense_residual"]


@needs_dot
def test_draw_model_writes_a_png(tmp_path):
    path = draw_model(_model("lambda_mlp"), tmp_path / "sub" / "model.png")
    assert path == tmp_path / "sub" / "model.png" and path.read_bytes()[:4] == PNG


def test_without_graphviz_one_line_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on this PATH
    assert draw_model(_model("lambda_mlp"), tmp_path / "model.png") is None
    out = capsys.readouterr().out
    assert out == MISSING + "\n" and "apt-get install graphviz" in out
    assert not (tmp_path / "model.png").exists()


@pytest.mark.slow
@needs_dot
def test_a_dry_run_writes_the_picture_into_its_output_folder_and_names_it(tmp_path):
    proc = run_cli("model=residual_graph", "dry_run=true", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    picture = tmp_path / "outputs" / "run" / "model.png"
    assert f"model picture: {picture}" in proc.stdout
    assert picture.read_bytes()[:4] == PNG


@pytest.mark.slow
def test_a_dry_run_without_graphviz_says_so_and_succeeds(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_cli("model=residual_graph", "dry_run=true", tmp_path=tmp_path, env={"PATH": str(empty)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert MISSING in lines and not any(line.startswith("model picture:") for line in lines)
    assert "builds with 171,306 params" in proc.stdout
    assert not (tmp_path / "outputs" / "run" / "model.png").exists()


@pytest.mark.slow
@needs_dot
def test_a_run_logs_the_picture_beside_the_summary(tmp_path, store):
    proc = run_cli(
        "model=residual_graph",
        *TINY,
        "training.epochs=1",
        f"tracking.uri={store}",
        "tracking.experiment=picture",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "outputs" / "run" / "model.png").read_bytes()[:4] == PNG
    client = mlflow.MlflowClient(tracking_uri=store)
    run = client.search_runs([client.get_experiment_by_name("picture").experiment_id])[0]
    assert {"model.png", "model_summary.txt"} <= {f.path for f in client.list_artifacts(run.info.run_id)}


def test_the_install_step_never_fails_for_graphviz(tmp_path):
    """Where Graphviz cannot be installed (no apt-get here), the install step says so and goes on (exit 0)."""
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "install_graphviz.sh"
    proc = subprocess.run(
        ["/bin/sh", str(script)], env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "Graphviz's dot is missing and apt-get is not available" in proc.stderr
