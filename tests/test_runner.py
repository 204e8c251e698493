"""The runner end to end: a real Keras fit on real digits, tracked in a real MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from experiments.tracking import uri as tracking
from tests.conftest import ROOT, TINY, run_cli

pytestmark = pytest.mark.slow  # real CLI processes: `pytest -m "not slow"` skips them


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    """One tracked training run (lambda MLP, abs, 400 digits, 2 epochs) shared by the tests below."""
    tmp = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{tmp}/mlflow.db"
    proc = run_cli(*TINY, f"tracking.uri={uri}", "tracking.experiment=runner_test", tmp_path=tmp)
    assert proc.returncode == 0, proc.stderr[-4000:]
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("runner_test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return {"tmp": tmp, "uri": uri, "client": client, "run": runs[0], "proc": proc}


def test_run_is_finished_in_its_experiment_not_default(one_run):
    run, client = one_run["run"], one_run["client"]
    assert run.info.status == "FINISHED"
    assert client.search_runs(["0"]) == []  # nothing in the Default experiment


def test_params_are_the_flattened_resolved_config(one_run):
    p = one_run["run"].data.params
    assert p["model.activation"] == "abs"
    assert p["model.name"] == "lambda_mlp"
    assert p["optimizer.learning_rate"] == "0.001"
    assert p["training.epochs"] == "2" and p["training.batch_size"] == "128"
    assert p["seed"] == "0" and p["dataset.limit"] == "400"
    assert p["model.layers.3.function"] == "abs"  # the interpolation is resolved
    assert p["n_params_total"] == "101770" and p["n_params_trainable"] == "101770"
    assert p["data.train_size"] == "280" and p["data.num_classes"] == "10"


def test_metrics_per_epoch_then_final_evaluation(one_run):
    client, run_id = one_run["client"], one_run["run"].info.run_id
    for key in ("loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy", "epoch_time_s"):
        history = client.get_metric_history(run_id, key)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1], key
    losses = [m.value for m in sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)]
    assert losses[1] < losses[0]  # it really trained
    m = one_run["run"].data.metrics
    for key in ("test_loss", "test_sparse_categorical_accuracy", "train_loss", "train_sparse_categorical_accuracy"):
        assert key in m
    assert 0.3 < m["test_sparse_categorical_accuracy"] <= 1.0


def test_tags(one_run):
    t = one_run["run"].data.tags
    assert t["layerlab.role"] == "job"
    assert t["layerlab.model"] == "lambda_mlp" and t["layerlab.dataset"] == "mnist_sample"
    overrides = json.loads(t["layerlab.overrides"])
    assert set(TINY) <= set(overrides) and "tracking.experiment=runner_test" in overrides
    assert len(t["layerlab.git_commit"]) == 40 and t["layerlab.git_dirty"] in ("true", "false")
    assert len(t["layerlab.config_hash"]) == 16
    assert "layerlab.sweep_id" not in t  # a single run is not part of a sweep


def _artifacts(client, run_id, path=""):
    out = []
    for f in client.list_artifacts(run_id, path):
        out.extend(_artifacts(client, run_id, f.path) if f.is_dir else [f.path])
    return out


def test_artifacts(one_run, tmp_path):
    client, run_id = one_run["client"], one_run["run"].info.run_id
    files = set(_artifacts(client, run_id))
    assert {
        "config.yaml",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        ".hydra/hydra.yaml",
        "model_summary.txt",
        "history.csv",
        "plots/curves_loss.png",
        "plots/curves_metric.png",
        "plots/predictions.png",
        "plots/confusion_matrix.png",
    } <= files
    local = Path(client.download_artifacts(run_id, "", str(tmp_path)))
    assert "Total params: 101,770" in (local / "model_summary.txt").read_text()
    hist = pd.read_csv(local / "history.csv")
    assert len(hist) == 2 and {"loss", "val_loss", "sparse_categorical_accuracy"} <= set(hist.columns)
    assert (local / "plots" / "predictions.png").read_bytes()[:4] == b"\x89PNG"
    assert "activation: abs" in (local / "config.yaml").read_text()


def test_final_line_names_run_and_how_to_open_it(one_run):
    last = [line for line in one_run["proc"].stdout.splitlines() if line.startswith("layerlab: FINISHED")]
    assert last and one_run["run"].info.run_id in last[-1] and "mlflow ui" in last[-1]


RELOAD = r"""
import json, sys, numpy as np, mlflow, keras
import layers  # registers the custom layers and functions (needed for safe-mode loading)
from experiments.data import load_dataset
from omegaconf import OmegaConf
uri, run_id, model_uri, out = sys.argv[1:5]
mlflow.set_tracking_uri(uri)
cfg = OmegaConf.load(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="config.yaml", dst_path=out))
x, y = load_dataset(cfg.dataset, int(cfg.seed)).test
pyfunc = mlflow.pyfunc.load_model(model_uri)
p1 = np.argmax(np.asarray(pyfunc.predict(x)), axis=1)
local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=out)
import glob
keras_file = glob.glob(local + "/**/*.keras", recursive=True)[0]
model = keras.models.load_model(keras_file, safe_mode=True)
p2 = np.argmax(model.predict(x, verbose=0), axis=1)
print(json.dumps({"same": bool((p1 == p2).all()), "acc": float((p2 == y).mean()), "n": int(len(y))}))
"""


def test_logged_model_reloads_in_a_fresh_process_and_predicts_the_same(one_run, tmp_path):
    run = one_run["run"]
    model_uri = run.data.tags["layerlab.model_uri"]
    proc = subprocess.run(
        [sys.executable, "-c", RELOAD, one_run["uri"], run.info.run_id, model_uri, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same"] and result["n"] == 80
    # The reloaded model reproduces the test accuracy the run logged.
    assert result["acc"] == pytest.approx(run.data.metrics["test_sparse_categorical_accuracy"], abs=1e-6)


def test_same_seed_and_determinism_give_the_same_numbers(tmp_path, store):
    args = [
        *TINY,
        "training.deterministic=true",
        f"tracking.uri={store}",
        "tracking.experiment=det",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    for i in range(2):
        proc = run_cli(*args, tmp_path=tmp_path / str(i))
        assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("det").experiment_id])
    assert len(runs) == 2
    a, b = (r.data.metrics for r in runs)
    for key in ("loss", "val_loss", "test_loss", "test_sparse_categorical_accuracy"):
        assert a[key] == b[key], key


def test_data_that_cannot_be_split_fails_before_any_run_is_logged(tmp_path, store):
    # limit=30 passes the type check but cannot be split into stratified train/val/test sets. The data is loaded
    # before the MLflow run is created, so a bad dataset leaves no half-logged run (a failure during training is a
    # FAILED run with its error: test_nan_loss_stops_the_run_as_failed).
    proc = run_cli("dataset.limit=30", f"tracking.uri={store}", "tracking.experiment=fail", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "layerlab: error: dataset.limit" in proc.stderr and "Traceback" not in proc.stderr
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("fail")
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []


def test_default_uri_is_what_mlflow_opens_from_the_project_root():
    assert tracking.default_uri() == f"sqlite:///{ROOT / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-c", "import mlflow; print(mlflow.get_tracking_uri())"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    opened = proc.stdout.strip().splitlines()[-1]
    # MLflow's own default, opened from the project root, is the same file as ours.
    assert opened.startswith("sqlite:///")
    assert (ROOT / opened[len("sqlite:///") :]).resolve() == (ROOT / "mlflow.db").resolve()
    assert tracking.resolve_uri(None) == tracking.default_uri()
    assert tracking.resolve_uri("sqlite:///mlflow.db") == tracking.default_uri()
