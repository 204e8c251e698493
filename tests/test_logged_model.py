"""Self-contained logged models: they load and predict in a process that cannot import the project.

The fresh process is ``python -I -S`` with only the venv's site-packages
appended to ``sys.path``: ``-I`` drops PYTHONPATH, the user site and the
current folder, ``-S`` skips ``site`` so no ``.pth`` file runs, and it is the
``__editable__`` ``.pth`` of ``pip install -e .`` that would make ``layers``
importable. The child asserts that ``layers`` and ``experiments`` are not
importable before it loads anything; it runs in a temp folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import mlflow
import numpy as np
import pytest

from experiments.job.artifacts import log_model
from experiments.job.packaging import EXAMPLE_MAX_VALUES, example_rows
from experiments.models import build_model
from tests.conftest import compose

MODELS = ["class_mlp", "rectifier_mlp"]  # custom layer classes; Lambda layers with registered functions
# class_mlp is logged with class names (as string labels or folder names give them), rectifier_mlp without.
NAMES = {"class_mlp": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]}

FRESH = r"""
import importlib.util, json, sys
sys.path.extend(json.loads(sys.argv[1]))
blocked = [m for m in ("layers", "experiments") if importlib.util.find_spec(m) is not None]
assert not blocked, f"the project is importable: {blocked}"
import numpy as np, mlflow
mode, uri, out = sys.argv[2:5]
mlflow.set_tracking_uri(uri)
result = {}
for name, model_uri in json.loads(sys.argv[5]).items():
    x = np.load(f"{out}/{name}_x.npy")
    if mode == "pyfunc":
        loaded = mlflow.pyfunc.load_model(model_uri)
        probs = loaded.predict(x)
        labels = loaded.predict(x, params={"output": "labels"})
        result[name + ".labels"] = [v if isinstance(v, str) else int(v) for v in np.asarray(labels).tolist()]
    else:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=f"{out}/{name}_dl")
        sys.path.insert(0, local + "/code"); import layers  # docs/serving.md: the code shipped with the model
        import keras
        probs = keras.models.load_model(local + "/data/model.keras", safe_mode=True).predict(x, verbose=0)
    result[name] = float(np.abs(np.asarray(probs) - np.load(f"{out}/{name}_p.npy")).max())
print(json.dumps(result))
"""


def _site_packages() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    out = tmp_path_factory.mktemp("logged")
    uri = f"sqlite:///{out}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("logged_models", artifact_location=str(out / "artifacts"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 28, 28)).astype("uint8")
    uris = {}
    mlflow.set_tracking_uri(uri)
    try:
        for name in MODELS:
            model = build_model(compose(f"model={name}").model)
            model.compile("adam", "sparse_categorical_crossentropy")
            model.fit(x, np.arange(64) % 10, epochs=1, verbose=0)
            with mlflow.start_run(experiment_id=exp) as run:
                log_model(model, x[:8], class_names=NAMES.get(name), task="classification")
            uris[name] = client.get_run(run.info.run_id).data.tags["layerlab.model_uri"]
            np.save(out / f"{name}_x.npy", x[:16])
            np.save(out / f"{name}_p.npy", model.predict(x[:16], verbose=0))
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return {"out": out, "uri": uri, "uris": uris}


def _fresh(mode: str, logged) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            FRESH,
            json.dumps(_site_packages()),
            mode,
            logged["uri"],
            str(logged["out"]),
            json.dumps(logged["uris"]),
        ],
        cwd=logged["out"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pyfunc_predicts_the_same_without_the_project(logged):
    result = _fresh("pyfunc", logged)
    assert {name: result[name] for name in MODELS} == {name: pytest.approx(0.0, abs=1e-6) for name in MODELS}
    # params={"output": "labels"}: each row's class by argmax, named where the model was logged with names
    for name in MODELS:
        index = np.load(logged["out"] / f"{name}_p.npy").argmax(axis=1)
        expected = [NAMES[name][i] for i in index] if name in NAMES else index.tolist()
        assert result[f"{name}.labels"] == expected


def test_keras_safe_mode_predicts_the_same_after_the_one_line_import(logged):
    assert _fresh("keras", logged) == {name: pytest.approx(0.0, abs=1e-6) for name in MODELS}


def test_signature_and_input_example_are_recorded(logged):
    from mlflow.models import Model

    # Not download_artifacts("models:/m-...", tracking_uri=...): MLflow 3.17 then asks the default store.
    model_id = logged["uris"]["class_mlp"].removeprefix("models:/")
    local = mlflow.MlflowClient(logged["uri"]).get_logged_model(model_id).artifact_location
    meta = Model.load(local)
    assert meta.signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "uint8", "shape": (-1, 28, 28)}
    assert meta.signature.outputs.to_dict()[0]["tensor-spec"] == {"dtype": "float32", "shape": (-1, 10)}
    assert meta.saved_input_example_info["type"] == "ndarray"
    example = json.loads(open(os.path.join(local, "input_example.json")).read())
    assert np.asarray(example).shape == (2, 28, 28)
    assert meta.flavors["python_function"]["loader_module"] == "layerlab_pyfunc"
    assert os.path.isfile(os.path.join(local, "code", "layers", "dense.py"))


def test_input_example_is_left_out_when_one_image_is_too_large():
    assert example_rows(np.zeros((8, 28, 28))).shape == (2, 28, 28)
    assert example_rows(np.zeros((8, 512, 512, 3))) is None  # 786,432 values > EXAMPLE_MAX_VALUES
    assert EXAMPLE_MAX_VALUES < 512 * 512 * 3


def _train_and_load(tmp_path, store, *overrides):
    """A real job on a tiny table (1 epoch, model logged), its pyfunc model loaded back, and its test rows."""
    from experiments.config.schema import validate
    from experiments.data import load_dataset
    from experiments.job.context import JobContext
    from experiments.job.tracked import TrackedJob

    cfg = compose(
        *overrides,
        "training.epochs=1",
        "training.verbose=0",
        "tracking.log_plots=false",
        "tracking.log_model=true",
        f"tracking.uri={store}",
    )
    result = TrackedJob(cfg, JobContext(output_dir=str(tmp_path / "out"))).run()
    assert result.status == "FINISHED"
    uri = mlflow.MlflowClient(store).get_run(result.run_id).data.tags["layerlab.model_uri"]
    mlflow.set_tracking_uri(store)
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return loaded, load_dataset(validate(cfg).dataset, seed=0).test[0]


def test_a_binary_table_classifier_answers_with_its_string_labels_on_request(tmp_path, store):
    from tests import datasets_fixtures as fx

    path = fx.table(tmp_path / "houses.csv", n=120)  # labels "big" / "small": binary, one sigmoid unit
    loaded, x = _train_and_load(
        tmp_path,
        store,
        "dataset=table",
        "model=table_mlp",
        f"dataset.path={path}",
        "dataset.target=label",
        "training.loss=binary_crossentropy",
    )
    probs = loaded.predict(x)  # the default answer is unchanged: the sigmoid output
    assert probs.shape == (len(x), 1) and ((probs >= 0) & (probs <= 1)).all()
    labels = loaded.predict(x, params={"output": "labels"})
    assert labels.tolist() == np.where(probs[:, 0] > 0.5, "small", "big").tolist()
    assert loaded.metadata.metadata == {"class_names": ["big", "small"], "task": "binary"}


@pytest.mark.slow  # a second real job; the regression contract (no params schema) is cheap to state
def test_a_regression_model_answers_with_numbers_whatever_is_asked(tmp_path, store):
    from tests import datasets_fixtures as fx

    path = fx.table(tmp_path / "houses.csv", n=120, regression=True)
    loaded, x = _train_and_load(
        tmp_path, store, "+experiment=table_regression", f"dataset.path={path}", "dataset.target=price"
    )
    assert loaded.metadata.signature.params is None and loaded.metadata.metadata == {"task": "regression"}
    values = loaded.predict(x)
    assert values.shape == (len(x), 1) and values.dtype == np.float32
    np.testing.assert_array_equal(loaded.predict(x, params={"output": "labels"}), values)  # ignored, not refused


def test_labels_follow_the_output_width_not_the_task():
    from experiments.job.pyfunc_loader import to_labels

    two_softmax = np.array([[0.9, 0.1], [0.2, 0.8]])  # a two-class task trained with a categorical loss
    one_sigmoid = np.array([[0.7], [0.2], [0.5]])  # class 1 only above 0.5
    assert to_labels(two_softmax, ["cat", "dog"]).tolist() == ["cat", "dog"]
    assert to_labels(one_sigmoid, ["cat", "dog"]).tolist() == ["dog", "cat", "cat"]
    assert to_labels(one_sigmoid).tolist() == [1, 0, 0]
