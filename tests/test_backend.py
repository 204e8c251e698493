"""backend=tensorflow|jax: chosen before Keras loads, recorded on every run, compared by a sweep; the per-backend
XLA default; a missing backend refused in one paragraph."""

from __future__ import annotations

import pytest

from experiments import api
from experiments.config.schema import validate
from experiments.errors import LayerlabError
from experiments.tracking import tags
from tests.conftest import TINY, compose

QUIET = [*TINY[:1], "training.epochs=1", *TINY[2:], "tracking.log_model=false", "tracking.log_plots=false"]


def test_backend_key_and_the_xla_default_per_backend(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert validate(compose()).backend == "tensorflow"
    assert validate(compose()).training.jit_compile is False
    assert validate(compose("backend=jax")).training.jit_compile is True  # eager JAX is slow
    assert validate(compose("backend=jax", "training.jit_compile=false")).training.jit_compile is False
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert validate(compose()).backend == "jax"  # KERAS_BACKEND is the default
    with pytest.raises(LayerlabError, match="backend"):
        validate(compose("backend=theano"))
    with pytest.raises(LayerlabError, match="TensorFlow backend only"):  # tf.distribute has no JAX twin here
        validate(compose("backend=jax", "training.strategy=mirrored"))


def test_torch_runs_one_step_per_call_as_keras_pytorch_trainer_requires():
    assert validate(compose("backend=torch")).training.steps_per_execution == 1
    assert validate(compose("backend=torch")).training.jit_compile is False
    assert validate(compose("backend=jax")).training.steps_per_execution == 32  # the default elsewhere


def test_a_missing_backend_is_refused_before_keras_tries():
    from experiments import backends

    if "torch" in backends.installed_backends():
        pytest.skip("PyTorch is installed here (make install-torch)")
    with pytest.raises(LayerlabError, match="not installed") as exc:
        backends.require_installed("torch")
    assert "make install-torch" in str(exc.value)


@pytest.mark.slow
def test_sweep_compares_backends_each_job_on_its_own(store):
    """One process (basic launcher): the first job loads Keras on JAX in the sweep's process, as a single
    `python runner.py backend=jax` does; the TensorFlow job then runs in a fresh process."""
    sweep = api.sweep(["backend=jax,tensorflow", *QUIET], tracking_uri=store)
    assert sweep.returncode == 0, sweep.log[-3000:]
    runs = sweep.runs()
    assert sorted(runs["backend"]) == ["jax", "tensorflow"] and (runs["status"] == "FINISHED").all()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    for run_id, backend in zip(runs["run_id"], runs["backend"]):
        run_tags = client.get_run(run_id).data.tags
        assert run_tags[tags.BACKEND] == backend  # what really ran, not only what was asked
        assert run_tags[tags.BACKEND_VERSION][0].isdigit()
        assert run_tags[tags.JIT_COMPILE] == ("true" if backend == "jax" else "false")  # XLA's default per backend
        assert run_tags[tags.PARENT_RUN_ID]  # the fresh process's run joined the sweep
    assert (runs["test_sparse_categorical_accuracy"] > 0).all()
    assert "backend=jax" in sweep.log and "backend=tensorflow" in sweep.log  # the summary's groups
    assert set(sweep.compare().summary["group"]) == {"backend=jax", "backend=tensorflow"}


BROKEN_LAYER = '''
import keras
import tensorflow as tf

from layers import register_layer


@register_layer(package="user_tf_ops")
class TfSquare(keras.layers.Layer):
    """Squares its input with a TensorFlow op: fine on TensorFlow, broken on every other backend."""

    def call(self, inputs):
        return tf.math.square(inputs)
'''


@pytest.mark.slow
def test_check_layer_round_trips_across_backends_and_names_a_tf_only_layer(tmp_path):
    """A .keras model saved on TensorFlow loads on JAX (and back) with equal predictions; a user layer written
    with tf.* ops passes on TensorFlow and is named as failing on JAX, with the reason."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    (tmp_path / "user_tf_ops.py").write_text(BROKEN_LAYER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.check_layer",
            "SimpleDense",
            "TfSquare",
            "--module",
            "user_tf_ops",
            "--backends",
            "tensorflow,jax",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    simple, broken = proc.stdout.strip().splitlines()[-2:]
    assert simple.startswith("SimpleDense: OK on tensorflow, jax")
    assert "tensorflow loads jax's model" in simple and "jax loads tensorflow's model" in simple
    assert broken.startswith("TfSquare: FAILS on jax at 'build'") and "works on tensorflow" in broken
    assert "imports TensorFlow" in broken and "keras.ops" in broken


FUSED_ON_JAX = """
import json

import keras

from tests.test_fused import _fused, _solo

assert keras.backend.backend() == "jax", keras.backend.backend()
seeds = [0, 1]
fused = {r.seed: {"status": r.status, "history": r.history.history, "scores": r.scores}
         for r in _fused("lambda_mlp", seeds, "backend=jax")}
solo = {}
for seed in seeds:
    history, final, _ = _solo("lambda_mlp", seed, "backend=jax")
    solo[seed] = {"history": history, "scores": final}
print("RESULTS " + json.dumps({"fused": fused, "solo": solo}, default=float))
"""


@pytest.mark.slow
def test_each_fused_replica_on_jax_equals_its_solo_jax_run():
    """Issue 38 item 3: the fused engine (the stacked model, XLA on, JAX's default here) trains 2 seeds in one fit
    on JAX, and each replica's per-epoch and test metrics equal its solo JAX run's within 1e-5. One JAX process
    (Keras picks its backend once per process), the helpers of tests/test_fused.py, its tiny data and 2 epochs."""
    import json
    import os
    import subprocess
    import sys

    import numpy as np

    from tests.conftest import ROOT

    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", FUSED_ON_JAX], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULTS ")][-1]
    results = json.loads(line[len("RESULTS ") :])
    fused, solo = results["fused"], results["solo"]
    assert sorted(fused) == sorted(solo) == ["0", "1"]
    for seed in solo:
        assert fused[seed]["status"] == "FINISHED"
        for what in ("history", "scores"):
            mine, theirs = fused[seed][what], solo[seed][what]
            assert set(mine) == set(theirs), (sorted(mine), sorted(theirs))
            for key in theirs:
                a, b = np.asarray(mine[key], dtype=float), np.asarray(theirs[key], dtype=float)
                assert a.shape == b.shape and np.all(np.abs(a - b) <= 1e-5), f"seed {seed} {what} {key}: {a} vs {b}"
    assert "val_loss" in solo["0"]["history"] and len(solo["0"]["history"]["val_loss"]) == 2  # both epochs compared
    assert fused["0"]["history"]["loss"][0] != fused["1"]["history"]["loss"][0]  # two seeds, two models
