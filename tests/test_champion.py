"""The best model of a sweep: chosen by the validation metric, registered, the alias moved only on a win."""

from __future__ import annotations

import os

import keras
import mlflow
import numpy as np
import pytest

from experiments.config.metrics import MetricSpec
from experiments.job.artifacts import log_model
from experiments.sweeps.champion import choose_and_register
from experiments.sweeps.state import SweepState
from tests.conftest import TINY, run_cli

X = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")


@pytest.fixture
def lab(tmp_path, store):
    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("champion", artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_tracking_uri(store)
    yield {"client": client, "exp": exp, "uri": store, "tmp": tmp_path}
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def _sweep(lab, jobs, register_as="digits_mlp"):
    """A parent run and one child per (val, test) with a small logged model; returns state, rows, predictions."""
    client = lab["client"]
    parent = client.create_run(lab["exp"]).info.run_id
    state = SweepState(
        uri=lab["uri"],
        experiment="champion",
        experiment_id=lab["exp"],
        parent_run_id=parent,
        sweep_id=parent[:8],
        sweep_dir=lab["tmp"] / parent,
        metric=MetricSpec("accuracy", "max"),
    )
    rows, preds = [], {}
    for i, (val, test) in enumerate(jobs):
        keras.utils.set_random_seed(len(preds) + 100 * i)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        with mlflow.start_run(experiment_id=lab["exp"]) as run:
            mlflow.log_metrics({"val_accuracy": val, "test_accuracy": test})
            mlflow.log_param("sweep.register_as", register_as or "null")
            log_model(model, X)
        rows.append({"job": str(i), "status": "FINISHED", "run_id": run.info.run_id, "val": val, "test": test})
        preds[run.info.run_id] = model.predict(X, verbose=0)
    return state, rows, preds


def test_best_child_is_chosen_by_validation_never_test_and_named_on_the_parent(lab):
    state, rows, _ = _sweep(lab, [(0.80, 0.99), (0.90, 0.50)], register_as=None)
    rows.append({"job": "2", "status": "FAILED", "run_id": "x", "val": 0.99, "test": 0.99})
    text = choose_and_register(state, lab["client"], rows)
    parent = lab["client"].get_run(state.parent_run_id).data
    assert parent.tags["layerlab.best_run_id"] == rows[1]["run_id"]
    assert parent.tags["layerlab.best_model_uri"].startswith("models:/m-")
    assert parent.metrics["best_val_accuracy"] == pytest.approx(0.90)
    assert "job 1" in text and "val_accuracy=0.9000" in text and "registry" not in text


def test_register_as_moves_champion_only_when_the_new_best_beats_it(lab):
    client = lab["client"]
    state, rows, _ = _sweep(lab, [(0.80, 0.9), (0.90, 0.5)])
    text = choose_and_register(state, client, rows)
    assert "models:/digits_mlp/1 registered; it is the first, so champion -> version 1" in text
    assert client.get_model_version_by_alias("digits_mlp", "champion").run_id == rows[1]["run_id"]

    state, rows, _ = _sweep(lab, [(0.85, 1.0)])  # better on test, worse on validation: no move
    text = choose_and_register(state, client, rows)
    assert (
        "models:/digits_mlp/2 registered; champion stays on version 1: val_accuracy 0.8500 does not beat 0.9000" in text
    )
    assert str(client.get_model_version_by_alias("digits_mlp", "champion").version) == "1"

    state, rows, preds = _sweep(lab, [(0.95, 0.1), (0.7, 0.7)])
    text = choose_and_register(state, client, rows)
    assert "champion moved from version 1 to 3: val_accuracy 0.9500 beats 0.9000" in text
    champion = client.get_model_version_by_alias("digits_mlp", "champion")
    assert str(champion.version) == "3" and champion.run_id == rows[0]["run_id"]

    probs = mlflow.pyfunc.load_model("models:/digits_mlp@champion").predict(X)
    np.testing.assert_allclose(probs, preds[rows[0]["run_id"]], atol=1e-6)


def test_a_minimised_metric_wins_when_lower(lab):
    client = lab["client"]
    state, rows, _ = _sweep(lab, [(0.30, 0.3), (0.20, 0.9)], register_as="loss_model")
    state.metric = MetricSpec("loss", "min")
    for r in rows:  # the rows carry val_loss now
        client.log_metric(r["run_id"], "val_loss", r["val"])
    assert "champion -> version 1" in choose_and_register(state, client, rows)
    assert client.get_model_version_by_alias("loss_model", "champion").run_id == rows[1]["run_id"]


@pytest.mark.slow
def test_a_sweep_registers_its_best_model_from_the_command_line(tmp_path, store):
    proc = run_cli(
        "-m",
        "seed=0,1",
        *TINY,
        "training.epochs=1",
        f"tracking.uri={store}",
        "tracking.log_plots=false",
        "training.checkpoint.enabled=false",
        "tracking.experiment=champion_cli",
        "sweep.register_as=cli_model",
        "sweep.compare=false",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "layerlab: best model: job" in proc.stdout and "val_sparse_categorical_accuracy=" in proc.stdout
    assert "models:/cli_model/1 registered; it is the first, so champion -> version 1" in proc.stdout
    client = mlflow.MlflowClient(store)
    assert str(client.get_model_version_by_alias("cli_model", "champion").version) == "1"
