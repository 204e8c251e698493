"""The cuts of issue 37 change the cost of a step, not its results.

A solo fit now runs ``training.steps_per_execution`` steps per graph call on
batches gathered from resident arrays by one seeded permutation per epoch,
inside the train graph (no ``tf.data`` iterator per step).
With ``training.deterministic=true`` its per-epoch metrics equal those of the
step as it ran before (one step per call, the NaN guard and stop-on-signal
reading every batch's logs, batches batched from single samples) fed the same
batches. The shuffled order itself is new (``Dataset.shuffle`` of single
indices cost more than the step, BENCHMARKS.md), so shuffled runs are compared
at one and several steps per call on the same seeded orders.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from experiments.config.schema import validate
from experiments.data import load_dataset, make_tf_dataset
from experiments.job.prepare import prepare
from experiments.training.callbacks import EpochTimer, NanGuard, StopOnSignal
from experiments.training.compile import compile_model
from experiments.training.loop import fit
from experiments.training.runtime import setup_runtime
from tests.conftest import compose

TOLERANCE = 1e-6
# 280 training samples in batches of 64: 4 full batches and one of 24, with steps_per_execution=3 the last call
# runs fewer steps than the others.
SMALL = [
    "model=lambda_mlp",
    "dataset.limit=400",
    "training.epochs=3",
    "training.batch_size=64",
    "training.deterministic=true",
    "training.verbose=0",
    "training.steps_per_execution=3",
]


def _history(cfg, train, val) -> dict:
    setup_runtime(cfg)
    _, model = prepare(cfg)
    compile_model(model, cfg)
    history = fit(model, cfg.training, {"train": train, "val": val}, [EpochTimer(), NanGuard(), StopOnSignal()])
    return {k: v for k, v in history.history.items() if k != "epoch_time_s"}


def _batched_before(x, y, batch_size: int, order=None):
    """A split batched as before issue 37: single samples through ``tf.data`` and ``batch``."""
    import tensorflow as tf

    order = np.arange(len(x)) if order is None else order
    return tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(batch_size)


def _assert_equal(now: dict, before: dict) -> None:
    assert set(now) == set(before) and len(now["loss"]) == 3
    for key in before:
        np.testing.assert_allclose(now[key], before[key], rtol=0, atol=TOLERANCE, err_msg=key)


def test_unshuffled_fit_equals_the_step_before():
    cfg = validate(compose(*SMALL, "training.shuffle=false"))
    data = load_dataset(cfg.dataset, cfg.seed)
    bs = cfg.training.batch_size
    now = _history(
        cfg,
        make_tf_dataset(*data.train, bs, shuffle=False, seed=0),
        make_tf_dataset(*data.val, bs, shuffle=False, seed=0),
    )
    before_cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, steps_per_execution=1))
    before = _history(before_cfg, _batched_before(*data.train, bs), _batched_before(*data.val, bs))
    _assert_equal(now, before)
    assert now["sparse_categorical_accuracy"][-1] > 0.3  # it learned: the comparison is not of two constants


def test_shuffled_fit_equals_one_step_per_call():
    """Seeded per-epoch orders: several steps per call, callbacks once per call, as one step per call."""
    cfg = validate(compose(*SMALL))
    data = load_dataset(cfg.dataset, cfg.seed)
    bs = cfg.training.batch_size

    def history(job):
        setup_runtime(job)  # the orders depend on the global seed too: seeded before the data, as in a job
        return _history(
            job,
            make_tf_dataset(*data.train, bs, shuffle=True, seed=job.seed),
            make_tf_dataset(*data.val, bs, shuffle=False, seed=0),
        )

    now = history(cfg)
    _assert_equal(
        now, history(dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, steps_per_execution=1)))
    )
    assert now["loss"][0] != now["loss"][1]


def test_batches_gathered_in_the_graph_equal_the_datasets_batches():
    """The resident path (``experiments.training.resident``) trains on the batches the shuffled dataset itself
    gives, epoch after epoch: the same history as Keras' own fit pulling them from ``tf.data``."""
    from experiments.adapters.keras_internals import build_training_state
    from experiments.training import resident

    cfg = validate(compose(*SMALL))
    data = load_dataset(cfg.dataset, cfg.seed)
    bs = cfg.training.batch_size

    def model_and_datasets():
        setup_runtime(cfg)  # the seeds: of the weights, and the global one the dataset's orders depend on
        train, val = (
            make_tf_dataset(*data.train, bs, shuffle=True, seed=cfg.seed),
            make_tf_dataset(*data.val, bs, shuffle=False, seed=0),
        )
        _, model = prepare(cfg)
        compile_model(model, cfg)
        return model, {"train": train, "val": val}

    model, ds = model_and_datasets()
    now = fit(model, cfg.training, ds, [])
    assert model in resident._KEPT  # it gathered its own batches
    model, ds = model_and_datasets()
    build_training_state(model, ds["train"].element_spec)
    keras_fit = model.fit(ds["train"], validation_data=ds["val"], epochs=cfg.training.epochs, verbose=0, shuffle=False)
    assert model not in resident._KEPT  # Keras pulled the batches from tf.data
    _assert_equal(now.history, keras_fit.history)


@pytest.mark.parametrize("value", [0, -2, "many"])
def test_steps_per_execution_is_checked(value):
    from experiments.errors import ConfigError

    with pytest.raises(ConfigError, match="training.steps_per_execution"):
        validate(compose(f"training.steps_per_execution={value}"))


def test_a_jobs_fit_gathers_its_batches_in_the_graph():
    """The job's datasets (``split_datasets`` then ``shard_by_data``) under the default strategy take the
    resident path, and its steps are put back after the fit (scoring runs Keras' own test function)."""
    from experiments.job.prepare import split_datasets
    from experiments.training import resident
    from experiments.training.distribute import make_strategy, shard_by_data
    from experiments.training.loop import fit_and_score

    cfg = validate(compose(*SMALL, "training.epochs=1"))
    setup_runtime(cfg)
    data, model = prepare(cfg)
    compile_model(model, cfg)
    datasets = {k: shard_by_data(v) for k, v in split_datasets(cfg, data).items()}
    history, final = fit_and_score(model, make_strategy(cfg.training), cfg.training, datasets, [NanGuard()])
    assert set(resident._KEPT[model]) == {True, False}  # train and validation steps gathered their batches
    assert not isinstance(model.train_function, resident._Steps)
    assert not isinstance(model.test_function, resident._Steps)
    assert np.isfinite(history.history["val_loss"][0]) and 0 <= final["test_sparse_categorical_accuracy"] <= 1
