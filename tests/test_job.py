"""The job lifecycle in-process: one config -> one MLflow run that always ends FINISHED, FAILED or KILLED.

Real Keras fits on tiny synthetic data and a real SQLite store; no subprocess,
so these run in seconds (the CLI versions are in test_runner.py / test_faults.py).
"""

from __future__ import annotations

import mlflow
import pytest

from experiments.errors import DataError
from experiments.job.context import JobContext, hydra_context
from experiments.job.tracked import TrackedJob
from experiments.tracking import tags
from experiments.training.interrupts import StopRequest
from experiments.training.progress_file import read_status
from tests.conftest import compose

SMALL = [
    "dataset=synthetic",
    "dataset.limit=300",
    "training.epochs=2",
    "training.batch_size=64",
    "tracking.log_model=false",
    "tracking.log_plots=false",
]


def _run(store, tmp_path, *overrides, ctx=None):
    cfg = compose(*SMALL, f"tracking.uri={store}", *overrides)
    job = TrackedJob(cfg, ctx or JobContext(output_dir=str(tmp_path / "out")))
    return job, job.run()


def _only_run(store, experiment="layerlab"):
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return client, run


def test_outside_hydra_the_context_is_a_single_run():
    assert hydra_context() == JobContext()


def test_a_job_is_one_finished_run_tagged_with_its_judged_metric(store, tmp_path, capsys):
    job, result = _run(store, tmp_path)
    assert result.status == "FINISHED" and result.run_id
    client, run = _only_run(store)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tags.METRIC] == "sparse_categorical_accuracy" and run.data.tags[tags.METRIC_MODE] == "max"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_sparse_categorical_accuracy")]
    assert steps == [0, 1]
    assert "test_sparse_categorical_accuracy" in run.data.metrics
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("layerlab: FINISHED val_sparse_categorical_accuracy=")


def test_another_keras_metric_is_judged_everywhere(store, tmp_path, capsys):
    _, result = _run(store, tmp_path, "training.metrics=[accuracy]", "training.checkpoint.enabled=true")
    _, run = _only_run(store)
    assert run.data.tags[tags.METRIC] == "accuracy"
    assert {"val_accuracy", "test_accuracy"} <= set(run.data.metrics)
    assert "val_sparse_categorical_accuracy" not in run.data.metrics
    assert "layerlab: FINISHED val_accuracy=" in capsys.readouterr().out
    assert (tmp_path / "out" / "checkpoints" / "best.keras").exists()  # monitored val_accuracy (max)


def test_a_user_error_after_the_start_ends_the_run_failed_with_its_params(store, tmp_path):
    with pytest.raises(DataError):
        _run(store, tmp_path, "dataset.shape=[8,8]")  # the lambda MLP takes 28x28
    _, run = _only_run(store)
    assert run.info.status == "FAILED"
    assert "has images of shape (8, 8)" in run.data.tags[tags.ERROR]
    assert run.data.params["training.epochs"] == "2"
    assert (tmp_path / "out" / "error.txt").read_text().startswith("model.input.shape = [28, 28]: the dataset")


def test_a_stop_request_ends_the_run_killed(store, tmp_path):
    StopRequest.signum = 15
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(store, tmp_path)
    finally:
        StopRequest.signum = None
    _, run = _only_run(store)
    assert run.info.status == "KILLED" and "interrupted" in run.data.tags[tags.ERROR]
    assert mlflow.active_run() is None


def test_a_sweep_job_finds_its_parent_by_tag_query(store, tmp_path):
    client = mlflow.MlflowClient(store)
    exp_id = client.create_experiment("layerlab", artifact_location=(tmp_path / "artifacts").as_uri())  # not ./mlruns
    sweep_dir = str(tmp_path / "multirun" / "x")
    parent = client.create_run(
        exp_id, tags={tags.ROLE: tags.ROLE_PARENT, tags.SWEEP_ID: "s-1", tags.SWEEP_DIR_RAW: sweep_dir}
    )
    ctx = JobContext(
        output_dir=str(tmp_path / "out"), mode="MULTIRUN", sweep_dir=sweep_dir, job_num=3, overrides=["seed=0"]
    )
    _run(store, tmp_path, ctx=ctx)
    (child,) = client.search_runs([exp_id], f"tags.`{tags.ROLE}` = 'job'")
    assert child.data.tags[tags.PARENT_RUN_ID] == parent.info.run_id
    assert child.data.tags[tags.SWEEP_ID] == "s-1" and child.data.tags[tags.JOB_NUM] == "3"
    # What the sweep's progress display reads: the epochs this job trained and its last validation value.
    status = read_status(ctx.progress_path)
    assert ctx.progress_path == tmp_path / "multirun" / "x" / ".progress" / "3.json"
    assert status["epoch"] == status["epochs"] == 2 and status["metric"] == "val_" + child.data.tags[tags.METRIC]
    assert 0 <= status["value"] <= 1


def test_a_sweep_job_without_its_parent_run_refuses_to_become_an_orphan(store, tmp_path):
    """No RUNNING parent for its sweep folder (closed, or never opened): one paragraph, and no top-level run."""
    from experiments.errors import TrackingError

    client = mlflow.MlflowClient(store)
    exp_id = client.create_experiment("layerlab", artifact_location=(tmp_path / "artifacts").as_uri())
    sweep_dir = str(tmp_path / "multirun" / "x")
    closed = client.create_run(exp_id, tags={tags.ROLE: tags.ROLE_PARENT, tags.SWEEP_DIR_RAW: sweep_dir})
    client.set_terminated(closed.info.run_id, "FAILED")
    ctx = JobContext(
        output_dir=str(tmp_path / "out"), mode="MULTIRUN", sweep_dir=sweep_dir, job_num=0, overrides=["seed=0"]
    )
    with pytest.raises(TrackingError) as err:
        _run(store, tmp_path, ctx=ctx)
    assert err.value.path == "tracking.uri" and "no RUNNING parent run" in str(err.value) and "Fix:" in str(err.value)
    assert client.search_runs([exp_id], f"tags.`{tags.ROLE}` = 'job'") == []


def test_skip_finished_skips_the_same_config(store, tmp_path):
    _run(store, tmp_path)
    _, again = _run(store, tmp_path, "sweep.skip_finished=true")
    assert again.status == "SKIPPED"
