"""experiments.api: runs, histories and the comparison as DataFrames (a real SQLite store), and the example
notebook executed end to end with nbclient (a real sweep in a child process)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from experiments import api
from experiments.analysis.runs import history_dicts, metric_histories
from experiments.errors import LayerlabError
from tests.conftest import ROOT

EXPERIMENT = "api-tables"
SWEEP = "sweep-api"
ABS = [0.91, 0.92, 0.93]
RELU = [0.85, 0.86, 0.84]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """2 activations x 3 seeds of one sweep, one FAILED run, one run that logged epoch 1 twice and skipped 2."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    root = tmp_path_factory.mktemp("api")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())

    def job(act, seed, curve, status="FINISHED", extra=()):
        run = client.create_run(
            exp,
            run_name=f"{act}-{seed}",
            tags={
                "layerlab.role": "job",
                "layerlab.sweep_id": SWEEP,
                "layerlab.wall_time_s": "12.5",
                "layerlab.overrides": json.dumps([f"model.activation={act}", f"seed={seed}"]),
            },
        )
        metrics = [
            Metric(k, v, 1000 + e, e)
            for e, acc in enumerate(curve)
            for k, v in {"val_sparse_categorical_accuracy": acc, "val_loss": 1 - acc, "loss": 1.1 - acc}.items()
        ]
        metrics += [Metric("test_sparse_categorical_accuracy", curve[-1] - 0.01, 2000, 0), *extra]
        client.log_batch(
            run.info.run_id,
            metrics=metrics,
            params=[Param("seed", str(seed)), Param("model.activation", act), Param("backend", "jax")],
        )
        client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    ids = {}
    for seed in range(3):
        ids["abs", seed] = job(
            "abs", seed, [0.6, ABS[seed] + 0.02, ABS[seed] + 0.01] if seed else [0.6, 0.7, ABS[0] + 0.01]
        )
        ids["relu", seed] = job("relu", seed, [0.5, 0.7, RELU[seed] + 0.01])
    ids["failed"] = job("relu", 9, [0.1], status="FAILED")
    # A retried epoch 1 (the later value wins) and no epoch 2: a gap the history keeps as NaN.
    ids["gappy"] = job(
        "tanh",
        0,
        [0.3, 0.4],
        extra=[
            Metric("val_sparse_categorical_accuracy", 0.45, 5000, 1),
            Metric("val_sparse_categorical_accuracy", 0.5, 5000, 3),
        ],
    )
    return {"uri": uri, "ids": ids}


def test_runs_is_one_row_per_run_with_swept_keys_seed_final_and_best(logged):
    df = api.runs(EXPERIMENT, SWEEP, logged["uri"])
    assert len(df) == 8 and df["run_id"].is_unique
    assert {
        "run_id",
        "status",
        "model.activation",
        "seed",
        "backend",
        "test_sparse_categorical_accuracy",
        "best_val_sparse_categorical_accuracy",
        "best_epoch",
        "wall_time_s",
    } <= set(df.columns)
    assert sorted(df["status"].value_counts().items()) == [("FAILED", 1), ("FINISHED", 7)]
    row = df[df["run_id"] == logged["ids"]["abs", 1]].iloc[0]
    assert row["model.activation"] == "abs" and row["seed"] == 1 and row["backend"] == "jax"
    assert row["val_sparse_categorical_accuracy"] == pytest.approx(ABS[1] + 0.01)  # final value
    assert row["best_val_sparse_categorical_accuracy"] == pytest.approx(ABS[1] + 0.02)  # best, at epoch 2
    assert row["best_epoch"] == 2 and row["wall_time_s"] == pytest.approx(12.5)
    finished = api.runs(EXPERIMENT, SWEEP, logged["uri"], status="FINISHED")
    assert len(finished) == 7 and (finished["status"] == "FINISHED").all()


def test_histories_long_format_keeps_the_latest_retry_and_gaps(logged):
    long = api.histories(EXPERIMENT, SWEEP, logged["uri"], keys=["val_sparse_categorical_accuracy"])
    assert list(long.columns) == ["run_id", "model.activation", "seed", "key", "epoch", "value"]
    gappy = long[long["run_id"] == logged["ids"]["gappy"]].set_index("epoch")["value"]
    assert gappy.to_dict() == pytest.approx({0: 0.3, 1: 0.45, 3: 0.5})  # epoch 1 retried: its later value
    assert len(long[long["run_id"] == logged["ids"]["abs", 0]]) == 3
    gappy_id = logged["ids"]["gappy"]
    cells = history_dicts(metric_histories(logged["uri"], [gappy_id], ["val_sparse_categorical_accuracy"]), [gappy_id])
    values = cells[0]["val_sparse_categorical_accuracy"]
    assert values[:2] == pytest.approx([0.3, 0.45]) and math.isnan(values[2]) and values[3] == pytest.approx(0.5)


def test_compare_returns_the_groups_and_factor_tests_as_frames(logged):
    c = api.compare(EXPERIMENT, SWEEP, logged["uri"])
    assert isinstance(c.summary, pd.DataFrame) and isinstance(c.tests, pd.DataFrame)
    by_group = c.summary.set_index("group")
    assert by_group.loc["model.activation=abs", "n"] == 3
    assert by_group.loc["model.activation=abs", "test_acc_mean"] == pytest.approx(sum(ABS) / 3)
    assert c.metric.test == "test_sparse_categorical_accuracy" and c.verdicts
    assert set(c.tests["factor"]) == {"model.activation"}


def test_unknown_experiment_is_one_paragraph(logged):
    with pytest.raises(LayerlabError, match="not found"):
        api.runs("no-such-experiment", tracking_uri=logged["uri"])


def test_compose_builds_and_validates_the_config():
    cfg = api.compose(["model.activation=relu", "backend=jax"])
    assert cfg.model.activation == "relu" and cfg.backend == "jax"
    with pytest.raises(LayerlabError, match="training.epochs"):
        api.compose(["training.epochs=-1"])


@pytest.mark.slow
def test_example_notebook_runs(tmp_path, monkeypatch):
    """docs/notebooks/abs_vs_relu.ipynb, every cell, in a real kernel: it must never go stale."""
    import nbformat
    from mlflow import MlflowClient
    from nbclient import NotebookClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel, and the sweep it starts, log here
    nb = nbformat.read(ROOT / "docs" / "notebooks" / "abs_vs_relu.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        o.get("text", "") or json.dumps(o.get("data", {})) for cell in nb.cells for o in cell.get("outputs", [])
    )
    assert "image/png" in text  # the plot
    assert "model.activation=abs" in text and "model.activation=relu" in text  # the comparison's groups
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("layerlab")
    jobs = client.search_runs([exp.experiment_id], "tags.`layerlab.role` = 'job'")
    assert (
        sorted((r.data.params["model.activation"], r.info.status) for r in jobs)
        == [("abs", "FINISHED")] * 2 + [("relu", "FINISHED")] * 2
    )


def test_run_with_a_bad_override_raises_the_jobs_own_paragraph(store):
    """api.run starts runner.py; a job that logs no run comes back as its own one-paragraph error."""
    with pytest.raises(LayerlabError, match="training.epochs") as exc:
        api.run(["training.epochs=-1"], tracking_uri=store)
    assert "logged no run (exit 2)" in str(exc.value)
