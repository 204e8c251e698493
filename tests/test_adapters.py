"""The library internals layerlab uses (experiments/adapters/): each test fails when the library changes one."""

from __future__ import annotations

import dataclasses

import keras
import pytest


def test_hydra_failed_job_return_carries_the_error_without_raising_it():
    from hydra.core.utils import JobReturn, JobStatus

    from experiments.adapters.hydra_internals import failed_return, job_error

    assert "_return_value" in {f.name for f in dataclasses.fields(JobReturn)}
    error = ValueError("bad value")
    ret = failed_return(("a=1",), error)
    assert ret.status == JobStatus.FAILED and ret.overrides == ["a=1"]
    assert job_error(ret) is error
    with pytest.raises(ValueError):
        _ = ret.return_value  # the public property raises it: why the adapter reads the field
    ret.return_value = RuntimeError("replaced")  # the public setter writes the same field
    assert str(job_error(ret)) == "replaced"
    assert job_error(JobReturn(status=JobStatus.COMPLETED, _return_value="ok")) is None


def test_hydra_basic_launcher_path_and_joblib_settings_conversion():
    from hydra.utils import get_class

    from experiments.adapters.hydra_internals import BASIC_LAUNCHER, joblib_parallel_kwargs

    assert get_class(BASIC_LAUNCHER).__name__ == "BasicLauncher"
    kwargs = joblib_parallel_kwargs(
        {
            "_target_": "x",
            "n_jobs": 2,
            "max_nbytes": "1000",
            "pre_dispatch": "2*n_jobs",
            "batch_size": "auto",
            "backend": None,
        }
    )
    assert kwargs == {
        "n_jobs": 2,
        "max_nbytes": 1000,
        "pre_dispatch": "2*n_jobs",
        "batch_size": "auto",
        "backend": "loky",
    }


def test_keras_call_graph_internals():
    from experiments.adapters.keras_internals import inbound_nodes, nodes_by_depth, tensor_origin

    inputs = keras.Input((4,), name="x")
    shared = keras.layers.Dense(3, name="shared")
    a, b = shared(inputs), shared(inputs)
    model = keras.Model(inputs, keras.layers.Add(name="add")([a, b]))
    levels = nodes_by_depth(model)
    assert levels is not None and sum(len(level) for level in levels) == 4  # input, shared twice, add
    assert len(inbound_nodes(shared)) == 2
    add_node = inbound_nodes(model.get_layer("add"))[0]
    origins = [tensor_origin(t) for t in add_node.input_tensors]
    assert [(op.name, node, tensor) for op, node, tensor in origins] == [("shared", 0, 0), ("shared", 1, 0)]


@pytest.mark.parametrize("prebuild", [False, True])
def test_building_the_training_state_first_traces_the_train_step_once(prebuild):
    """Keras creates optimizer and metric variables inside the first trace, so TensorFlow traces twice;
    building them first (the adapter) leaves one trace, and the variables it creates are Keras' own."""
    import numpy as np
    import tensorflow as tf

    from experiments.adapters.keras_internals import build_training_state

    class Counted(keras.Sequential):
        traces = 0

        def train_step(self, data):  # Python runs it once per trace of the train function
            Counted.traces += 1
            return super().train_step(data)

    keras.utils.set_random_seed(0)
    model = Counted([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    x = np.arange(40, dtype="float32").reshape(10, 4) / 40
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(10) % 3)).batch(4)
    if prebuild:
        build_training_state(model, ds.element_spec)
        assert model.optimizer.built and len(model.optimizer.variables) > 1
        assert all(float(np.sum(np.abs(v.numpy()))) == 0.0 for v in model.metrics_variables)
    model.fit(ds, epochs=2, verbose=0)
    assert Counted.traces == (1 if prebuild else 2)


def test_mlflow_start_run_tags_and_store_behind_a_client(tmp_path):
    import mlflow
    from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_USER

    from experiments.adapters.mlflow_internals import start_run_tags, tracking_store

    got = start_run_tags({"mine": "1"})
    assert got["mine"] == "1" and MLFLOW_USER in got and MLFLOW_SOURCE_NAME in got
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    store = tracking_store(client)
    assert hasattr(store, "get_metric_history_bulk")


def test_mlflow_run_active_in_a_thread_for_a_block_is_neither_started_nor_ended(tmp_path):
    import threading

    import mlflow

    from experiments.adapters.mlflow_internals import active_in_this_thread

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e", (tmp_path / "art").as_uri())).info.run_id
    mlflow.set_tracking_uri(uri)
    seen = []

    def log():
        with active_in_this_thread(run_id, uri):
            mlflow.log_param("units", 128)
            mlflow.log_text("text", "summary.txt")
            seen.append(mlflow.active_run().info.run_id)
        seen.append(mlflow.active_run())

    thread = threading.Thread(target=log)
    thread.start()
    thread.join()
    assert seen == [run_id, None] and mlflow.active_run() is None  # only that thread, only the block
    run = client.get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.params == {"units": "128"}
    assert [a.path for a in client.list_artifacts(run_id)] == ["summary.txt"]


@pytest.mark.parametrize("settings", [{}, {"weight_decay": 0.01, "clipnorm": 1.0}, {"amsgrad": True}])
def test_fused_adam_kernel_updates_as_keras_adam_does(settings):
    """Three steps of the same model and data, Keras' Adam.update_step vs TensorFlow's ResourceApplyAdam: the same
    weights and moments within float rounding; AMSGrad keeps Keras' own step (the kernel has none)."""
    import keras
    import numpy as np

    from experiments.adapters.keras_internals import use_fused_adam_kernel

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6), dtype=np.float32), rng.integers(0, 3, 64)
    trained = []
    for fused in (False, True):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(3)])
        model.compile(
            optimizer=keras.optimizers.Adam(0.01, **settings),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        if fused:
            assert use_fused_adam_kernel(model.optimizer) == (not settings.get("amsgrad"))
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        trained.append([v.numpy() for v in model.weights + model.optimizer.variables])
    for a, b in zip(*trained):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
