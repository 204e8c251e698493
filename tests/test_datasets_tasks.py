"""Tasks beyond 10-way classification, trained for real in-process on tiny files: conv_binary on a two-class image
folder, an MLP regressing a table column (beats the mean, in the target's units, judged lower-is-better), and a
bad dataset that stops before any MLflow run exists."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from experiments.config.schema import validate
from experiments.errors import DataError
from experiments.job.context import JobContext
from experiments.job.tracked import TrackedJob
from experiments.tracking import tags
from tests import datasets_fixtures as fx
from tests.conftest import compose, run_cli

QUIET = ["tracking.log_plots=false", "training.verbose=0"]


def _run(tmp_path, *overrides, log_model=False):
    cfg = compose(*overrides, *QUIET, f"tracking.log_model={str(log_model).lower()}")
    return TrackedJob(cfg, JobContext(output_dir=str(tmp_path / "out"))).run()


def test_regression_judges_lower_is_better_everywhere_it_chooses():
    from experiments.training.callbacks import make_callbacks

    job = validate(
        compose(
            "+experiment=table_regression",
            "dataset.path=x.csv",
            "dataset.target=y",
            "training.early_stopping.enabled=true",
        )
    )
    assert (job.metric.name, job.metric.mode) == ("mae", "min") and job.metric.better(1.0, 2.0)
    cbs = make_callbacks(job, out_dir=Path("unused"))
    stopper = next(c for c in cbs if type(c).__name__ == "EarlyStopping")
    keeper = next(c for c in cbs if hasattr(c, "flush"))
    assert stopper.monitor == "val_mae" and stopper.mode == "min"
    assert keeper.higher_is_better is False


@pytest.mark.slow  # real training and MLflow logging
def test_an_mlp_regresses_a_table_column_in_its_own_units_and_beats_the_mean(tmp_path, store):
    path = fx.table(tmp_path / "houses.csv", n=300, regression=True)
    result = _run(
        tmp_path,
        "+experiment=table_regression",
        f"dataset.path={path}",
        "dataset.target=price",
        "training.epochs=25",
        "training.batch_size=32",
        f"tracking.uri={store}",
    )
    assert result.status == "FINISHED"
    run = mlflow.MlflowClient(store).get_run(result.run_id)
    params = run.data.params
    assert params["data.task"] == "regression" and run.data.tags[tags.METRIC_MODE] == "min"
    # The baseline: predict the training mean for every test row, in the same units as the logged MAE.
    from experiments.data import load_dataset

    data = load_dataset(
        validate(compose("+experiment=table_regression", f"dataset.path={path}", "dataset.target=price")).dataset,
        seed=0,
    )
    mean_mae = float(np.mean(np.abs(data.test[1] - data.target_scale[0])))
    assert mean_mae > 10_000  # the units are the column's (prices), not standardised ones
    assert run.data.metrics["test_mae"] < 0.5 * mean_mae
    # provenance: the MLflow dataset inputs carry the loader's SHA-256 of the file, not MLflow's sampled digest
    digests = {i.dataset.digest for i in run.inputs.dataset_inputs}
    assert digests == {params["data.sha256"][:36]} and len(params["data.sha256"]) == 64


@pytest.mark.slow  # real training and MLflow logging
def test_conv_binary_trains_on_a_two_class_image_folder_and_keeps_the_class_names(tmp_path, store):
    root = fx.image_folder(tmp_path / "pets", per_class=16, size=12)
    result = _run(
        tmp_path,
        "+experiment=image_folder_binary",
        f"dataset.path={root}",
        "dataset.image_size=[12,12]",
        "training.epochs=1",
        "training.batch_size=8",
        f"tracking.uri={store}",
        log_model=True,
    )
    assert result.status == "FINISHED" and "test_accuracy" in result.metrics
    client = mlflow.MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.data.params["data.class_names"] == "cat,dog" and run.data.params["data.input_shape"] == "12x12x3"
    assert run.data.params["data.task"] == "binary" and run.data.params["data.files"] == "32"
    names = Path(client.download_artifacts(result.run_id, "class_names.json", str(tmp_path)))
    assert json.loads(names.read_text()) == ["cat", "dog"]
    model_uri = run.data.tags[tags.MODEL_URI]  # the logged model carries them too
    assert mlflow.models.get_model_info(model_uri).metadata["class_names"] == ["cat", "dog"]


@pytest.mark.slow  # the CLI: a 2 x 2 regression sweep, 1 epoch per job
def test_a_regression_sweep_minimises_the_error_in_its_summary_comparison_and_champion(tmp_path, store):
    import pandas as pd

    path = fx.table(tmp_path / "houses.csv", n=120, regression=True)
    done = run_cli(
        "-m",
        "+experiment=table_regression",
        "seed=0,1",
        "model.activation=relu,tanh",
        f"dataset.path={path}",
        "dataset.target=price",
        "training.epochs=1",
        *QUIET,
        f"tracking.uri={store}",
        "sweep.register_as=houses",
        tmp_path=tmp_path,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("table_regression").experiment_id])
    parent = next(r for r in runs if tags.BEST_RUN_ID in r.data.tags)
    children = [r for r in runs if r is not parent]
    assert len(children) == 4 and parent.data.tags[tags.METRIC_MODE] == "min"
    best = min(children, key=lambda r: r.data.metrics["val_mae"])  # the lowest validation error, never test
    assert parent.data.tags[tags.BEST_RUN_ID] == best.info.run_id
    assert parent.data.metrics["best_val_mae"] == pytest.approx(best.data.metrics["val_mae"])
    assert client.get_model_version_by_alias("houses", "champion").run_id == best.info.run_id
    assert f"val_mae={best.data.metrics['val_mae']:.4f} (min)" in out
    # The summary and comparison: lower is better, and no "epochs to 0.9" (an accuracy's target) for an error.
    assert "epochs to" not in out
    report = tmp_path / "multirun" / "comparison"
    assert "Compared metric: `test_mae` (lower is better)" in (report / "comparison.md").read_text()
    summary = pd.read_csv(report / "comparison.csv").set_index("model.activation")
    assert set(summary["mode"]) == {"min"} and summary["target"].isna().all()
    for level in ("relu", "tanh"):
        values = [r.data.metrics["test_mae"] for r in children if r.data.params["model.activation"] == level]
        assert summary.loc[level, "test_mae_mean"] == pytest.approx(np.mean(values), rel=1e-6)


def test_bad_data_stops_before_a_run_exists(tmp_path, store):
    with pytest.raises(DataError) as err:
        _run(tmp_path, "dataset=image_folder", f"dataset.path={tmp_path / 'missing'}", f"tracking.uri={store}")
    assert err.value.path == "dataset.path"
    client = mlflow.MlflowClient(store)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


@pytest.mark.slow  # real training and MLflow logging
def test_fused_replicates_train_on_an_image_folder_and_keep_its_class_names(tmp_path, store):
    """sweep.fuse_replicates with a streamed dataset: one fit for two seeds, one run per seed."""
    from experiments.job.fused_job import run_fused

    root = fx.image_folder(tmp_path / "pets", per_class=16, size=12)
    cfg = compose(
        "+experiment=image_folder_binary",
        f"dataset.path={root}",
        "dataset.image_size=[12,12]",
        "training.epochs=1",
        "training.batch_size=8",
        f"tracking.uri={store}",
        "seed=0",
        "sweep.fuse_replicates=true",
        "sweep.fused_seeds=[0,1]",
        "tracking.log_model=false",
        *QUIET,
    )
    result = run_fused(cfg, JobContext(output_dir=str(tmp_path / "out")), validate(cfg))
    assert result.status == "FINISHED"
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([result.experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1"]
    assert {r.info.status for r in runs} == {"FINISHED"} and all("test_accuracy" in r.data.metrics for r in runs)
    assert {
        (r.data.params["data.class_names"], r.data.params["data.task"], r.data.params["data.files"]) for r in runs
    } == {("cat,dog", "binary", "32")}
