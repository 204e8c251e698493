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
from tests.conftest import compose

QUIET = ["tracking.log_plots=false", "training.verbose=0"]


def _run(tmp_path, *overrides, log_model=False):
    cfg = compose(*overrides, *QUIET, f"tracking.log_model={str(log_model).lower()}")
    return TrackedJob(cfg, JobContext(output_dir=str(tmp_path / "out"))).run()


def test_regression_judges_lower_is_better_everywhere_it_chooses():
    from experiments.training.callbacks import make_callbacks

    job = validate(compose("+experiment=table_regression", "dataset.path=x.csv", "dataset.target=y",
                           "training.early_stopping.enabled=true"))
    assert (job.metric.name, job.metric.mode) == ("mae", "min") and job.metric.better(1.0, 2.0)
    cbs = make_callbacks(job, out_dir=Path("unused"))
    stopper = next(c for c in cbs if type(c).__name__ == "EarlyStopping")
    keeper = next(c for c in cbs if hasattr(c, "flush"))
    assert stopper.monitor == "val_mae" and stopper.mode == "min"
    assert keeper.higher_is_better is False


@pytest.mark.slow  # real training and MLflow logging
def test_an_mlp_regresses_a_table_column_in_its_own_units_and_beats_the_mean(tmp_path, store):
    path = fx.table(tmp_path / "houses.csv", n=300, regression=True)
    result = _run(tmp_path, "+experiment=table_regression", f"dataset.path={path}", "dataset.target=price",
                  "training.epochs=25", "training.batch_size=32", f"tracking.uri={store}")
    assert result.status == "FINISHED"
    run = mlflow.MlflowClient(store).get_run(result.run_id)
    params = run.data.params
    assert params["data.task"] == "regression" and run.data.tags[tags.METRIC_MODE] == "min"
    # The baseline: predict the training mean for every test row, in the same units as the logged MAE.
    from experiments.data import load_dataset

    data = load_dataset(validate(compose("+experiment=table_regression", f"dataset.path={path}",
                                         "dataset.target=price")).dataset, seed=0)
    mean_mae = float(np.mean(np.abs(data.test[1] - data.target_scale[0])))
    assert mean_mae > 10_000  # the units are the column's (prices), not standardised ones
    assert run.data.metrics["test_mae"] < 0.5 * mean_mae
    # provenance: the MLflow dataset inputs carry the loader's SHA-256 of the file, not MLflow's sampled digest
    digests = {i.dataset.digest for i in run.inputs.dataset_inputs}
    assert digests == {params["data.sha256"][:36]} and len(params["data.sha256"]) == 64


@pytest.mark.slow  # real training and MLflow logging
def test_conv_binary_trains_on_a_two_class_image_folder_and_keeps_the_class_names(tmp_path, store):
    root = fx.image_folder(tmp_path / "pets", per_class=16, size=12)
    result = _run(tmp_path, "+experiment=image_folder_binary", f"dataset.path={root}", "dataset.image_size=[12,12]",
                  "training.epochs=1", "training.batch_size=8", f"tracking.uri={store}", log_model=True)
    assert result.status == "FINISHED" and "test_accuracy" in result.metrics
    client = mlflow.MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.data.params["data.class_names"] == "cat,dog" and run.data.params["data.input_shape"] == "12x12x3"
    assert run.data.params["data.task"] == "binary" and run.data.params["data.files"] == "32"
    names = Path(client.download_artifacts(result.run_id, "class_names.json", str(tmp_path)))
    assert json.loads(names.read_text()) == ["cat", "dog"]
    model_uri = run.data.tags[tags.MODEL_URI]  # the logged model carries them too
    assert mlflow.models.get_model_info(model_uri).metadata["class_names"] == ["cat", "dog"]


def test_bad_data_stops_before_a_run_exists(tmp_path, store):
    with pytest.raises(DataError) as err:
        _run(tmp_path, "dataset=image_folder", f"dataset.path={tmp_path / 'missing'}", f"tracking.uri={store}")
    assert err.value.path == "dataset.path"
    client = mlflow.MlflowClient(store)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
