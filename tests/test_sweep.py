"""Real Hydra multiruns: one MLflow parent per sweep, every job a child, failures kept, comparison logged."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.slow  # real CLI processes: `pytest -m "not slow"` skips them

SWEEP = [
    "model.activation=abs,relu",
    "seed=0,1",
    *TINY,
    "tracking.log_model=false",
    "training.checkpoint.enabled=false",
]


def _runs(uri: str, experiment: str):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("layerlab.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("layerlab.role") == "job"]
    return client, parents, children


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_2x2_sweep_gives_one_parent_and_four_children(launcher, tmp_path, store):
    proc = run_cli(
        "-m",
        f"hydra/launcher={launcher}",
        *SWEEP,
        f"tracking.uri={store}",
        "tracking.experiment=sweep_test",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    client, parents, children = _runs(store, "sweep_test")
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    sweep_id = parent.data.tags["layerlab.sweep_id"]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["layerlab.sweep_id"] for c in children} == {sweep_id}
    assert sorted(c.data.tags["layerlab.job_num"] for c in children) == ["0", "1", "2", "3"]
    assert all(c.info.status == "FINISHED" for c in children)
    combos = {(c.data.params["model.activation"], c.data.params["seed"]) for c in children}
    assert combos == {("abs", "0"), ("abs", "1"), ("relu", "0"), ("relu", "1")}
    # The store was created once by the parent process: nothing leaked into the Default experiment.
    assert client.search_runs(["0"]) == []
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/comparison.md", "comparison/comparison.csv"} <= files
    assert any(f.endswith(".png") for f in files)
    assert "sweep_summary.md" in {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert parent.data.metrics["jobs_finished"] == 4 and parent.data.metrics["jobs_failed"] == 0
    assert "model.activation=abs" in proc.stdout and "model.activation=relu" in proc.stdout
    assert f"sweep {sweep_id} FINISHED: 4/4 jobs finished" in proc.stdout
    # The sweep at a glance in the UI: children named by what differs, the parent's description, best run.
    assert {c.info.run_name for c in children} == {
        "activation=abs seed=0",
        "activation=abs seed=1",
        "activation=relu seed=0",
        "activation=relu seed=1",
    }
    assert "Comparisons along each factor" in parent.data.tags["mlflow.note.content"]
    assert parent.data.tags["best_run"] in {c.info.run_name for c in children}
    assert parent.data.params["best_run"] == parent.data.tags["best_run"]
    assert {"test_acc_mean/activation:abs", "test_acc_ci95/activation:relu"} <= set(parent.data.metrics)
    assert all({d.dataset.name.split(" (")[0] for d in c.inputs.dataset_inputs} == {"mnist_sample"} for c in children)


def test_joblib_workers_get_their_share_of_the_cores(tmp_path, store):
    proc = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=0,1",
        *TINY,
        "tracking.log_model=false",
        "tracking.log_plots=false",
        f"tracking.uri={store}",
        "sweep.compare=false",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from experiments.config.launcher import available_cores

    expected = max(1, available_cores() // 2)
    assert f"{expected} TF thread(s) per parallel job" in proc.stdout


def test_a_failing_job_does_not_lose_the_others(tmp_path, store):
    # exp() of a hidden layer pushed by a huge learning rate overflows: that job fails inside its run (NaN loss).
    proc = run_cli(
        "-m",
        "model.activation=exponential",
        "optimizer.learning_rate=10,0.001",
        "dataset.limit=400",
        "training.epochs=3",
        "training.batch_size=64",
        "tracking.log_model=false",
        f"tracking.uri={store}",
        "tracking.experiment=sweep_fail",
        tmp_path=tmp_path,
    )
    assert proc.returncode != 0
    client, parents, children = _runs(store, "sweep_fail")
    assert len(parents) == 1 and len(children) == 2
    by_lr = {c.data.params["optimizer.learning_rate"]: c for c in children}
    assert by_lr["0.001"].info.status == "FINISHED"
    failed = by_lr["10"]
    assert failed.info.status == "FAILED"
    assert "became nan" in failed.data.tags["layerlab.error"]
    assert parents[0].info.status == "FAILED"  # finalised although Hydra skipped on_multirun_end
    summary = Path(client.download_artifacts(parents[0].info.run_id, "sweep_summary.md", str(tmp_path)))
    text = summary.read_text()
    assert "FAILED" in text and "optimizer.learning_rate=10" in text
    assert "rerun alone: python runner.py model.activation=exponential optimizer.learning_rate=10" in proc.stdout
    assert proc.stderr.count("Traceback") <= 1 and len(proc.stderr.splitlines()) < 80


def test_children_keep_the_swept_keys_in_their_names_when_the_draws_coincide(tmp_path, store):
    """A search whose trials all drew ``activation=abs`` still names each trial's activation; a key given one
    value for the whole sweep stays out of the names, and a key that differs between children is in them."""
    import json

    from experiments.sweeps.ui import rename_children
    from experiments.tracking import tags

    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("names", artifact_location=str(tmp_path / "artifacts"))
    runs = []
    for lr in ("0.01", "0.002"):
        overrides = ["model.activation=abs", f"optimizer.learning_rate={lr}", "training.epochs=1"]
        run = client.create_run(exp, run_name="x", tags={tags.OVERRIDES: json.dumps(overrides)})
        runs.append(client.get_run(run.info.run_id))
    sweep = ["model.activation=choice(abs, relu)", "optimizer.learning_rate=interval(1e-4, 1e-1)", "training.epochs=1"]
    rename_children(client, runs, "seed", sweep)
    names = sorted(client.get_run(r.info.run_id).info.run_name for r in runs)
    assert names == ["activation=abs learning_rate=0.002", "activation=abs learning_rate=0.01"]
    rename_children(client, runs, "seed")  # without the sweep's overrides: only what differs
    names = sorted(client.get_run(r.info.run_id).info.run_name for r in runs)
    assert names == ["learning_rate=0.002", "learning_rate=0.01"]
