"""Replicates in one fused fit (experiments/training/fused/): each replica equals its solo run.

The solo run is the path a normal job takes (setup_runtime, prepare, compile_model, make_tf_dataset,
fit_and_score); the fused group builds its replicas through the same functions.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest

from experiments.config.schema import validate
from experiments.data import load_dataset, make_tf_dataset
from experiments.errors import ConfigError, TrainingError
from experiments.job.prepare import prepare
from experiments.training.callbacks import NanGuard
from experiments.training.compile import compile_model
from experiments.training.fused import FusedReplicas
from experiments.training.loop import fit_and_score
from experiments.training.runtime import setup_runtime
from tests.conftest import compose

SEEDS = [0, 1, 2]
TOLERANCE = 1e-6
# 400 samples: 280 train = 2 batches of 128 + one of 24, so a smaller last batch is part of every epoch.
SMALL = ["dataset.limit=400", "training.epochs=2", "training.batch_size=128", "training.deterministic=true"]


def _cfg(model: str, seed: int, *extra: str):
    return validate(compose(f"model={model}", f"seed={seed}", *SMALL, *extra))  # the typed config a job reads


def _datasets(cfg, seed: int) -> dict:
    """The job's datasets (experiments/job/tracked.py), for this seed."""
    data = load_dataset(cfg.dataset, seed)
    bs = int(cfg.training.batch_size)
    return {
        "train": make_tf_dataset(*data.train, bs, shuffle=True, seed=seed),
        "val": make_tf_dataset(*data.val, bs, shuffle=False, seed=seed),
        "test": make_tf_dataset(*data.test, bs, shuffle=False, seed=seed),
    }


def _solo(model: str, seed: int, *extra: str, callbacks=None, broken: bool = False):
    """One solo job's fit, as a normal job runs it: (history dict, final scores, model)."""
    import tensorflow as tf

    cfg = _cfg(model, seed, *extra)
    setup_runtime(cfg)
    _, built = prepare(cfg)
    if broken:
        _break(built)
    compile_model(built, cfg)
    history, final = fit_and_score(
        built, tf.distribute.get_strategy(), cfg.training, _datasets(cfg, seed), callbacks or []
    )
    return history.history, final, built


def _break(model: keras.Model) -> None:
    """NaN weights in the last layer: the very first batch's loss is NaN."""
    last = [layer for layer in model.layers if layer.weights][-1]
    last.set_weights([np.full_like(w, np.nan) for w in last.get_weights()])


def _fused(model: str, seeds=SEEDS, *extra: str, broken_seed: int | None = None, callbacks=None, epochs=None):
    cfg = _cfg(model, seeds[0], *extra)
    setup_runtime(cfg)  # op determinism, as the group's job would set it

    def build_one(seed):
        _, built = prepare(dataclasses.replace(cfg, seed=seed))
        if seed == broken_seed:
            _break(built)
        return built

    engine = FusedReplicas(build_one, seeds, lambda m: compile_model(m, cfg))
    return engine.fit(lambda seed: _datasets(cfg, seed), epochs or int(cfg.training.epochs), callbacks)


def _assert_close(fused: dict, solo: dict, what: str) -> None:
    assert set(fused) == set(solo), f"{what}: keys {sorted(fused)} != solo {sorted(solo)}"
    for key in solo:
        a, b = np.asarray(fused[key], dtype=float), np.asarray(solo[key], dtype=float)
        assert a.shape == b.shape, f"{what} {key}: {a} vs solo {b}"
        assert np.all(np.abs(a - b) <= TOLERANCE), f"{what} {key}: {a} vs solo {b}"


@pytest.fixture(scope="module")
def lambda_group():
    """The 3-seed fused group of lambda_mlp and its 3 solo runs."""
    return _fused("lambda_mlp"), {seed: _solo("lambda_mlp", seed) for seed in SEEDS}


def test_each_replica_of_lambda_mlp_equals_its_solo_run(lambda_group):
    results, solos = lambda_group
    assert [r.seed for r in results] == SEEDS
    for r in results:
        history, final, _ = solos[r.seed]
        assert r.status == "FINISHED" and r.error is None
        _assert_close(r.history.history, history, f"seed {r.seed} history")
        _assert_close(r.scores, final, f"seed {r.seed} scores")
    # replicas really differ from each other (they are not one model trained three times)
    assert results[0].history.history["loss"][0] != results[1].history.history["loss"][0]


def test_the_group_gathers_every_replica_batch_in_its_graph():
    """One input pipeline for the group: the fused fit's train and validation steps gather each replica's batch
    from its resident split (experiments/training/resident.py), not from R zipped tf.data iterators; equality with
    the solo runs (above) shows the batches and their order are each replica's own."""
    from experiments.training import resident

    cfg = _cfg("lambda_mlp", 0, "training.epochs=1")
    setup_runtime(cfg)
    engine = FusedReplicas(
        lambda seed: prepare(dataclasses.replace(cfg, seed=seed))[1], [0, 1], lambda m: compile_model(m, cfg)
    )
    results = engine.fit(lambda seed: _datasets(cfg, seed), 1)
    assert [r.status for r in results] == ["FINISHED", "FINISHED"]
    steps = resident._KEPT[engine.fused]
    assert set(steps) == {True, False} and all(s.fused and len(s.splits) == 2 for s in steps.values())
    assert steps[True].splits[0].x is not steps[True].splits[1].x  # each replica its own split


def test_the_layout_is_branches_on_tensorflow_cpu_unless_asked():
    """sweep.fuse_layout=auto: branches side by side where TensorFlow runs on the CPU, the stack on a GPU."""
    import tensorflow as tf

    from experiments.training.fused import choose_layout

    assert choose_layout("auto") == ("stacked" if tf.config.list_physical_devices("GPU") else "branches")
    assert choose_layout("stacked") == "stacked" and choose_layout("branches") == "branches"


def test_each_replica_of_class_mlp_equals_its_solo_run():
    results = _fused("class_mlp")
    for r in results:
        history, final, _ = _solo("class_mlp", r.seed)
        _assert_close(r.history.history, history, f"class_mlp seed {r.seed} history")
        _assert_close(r.scores, final, f"class_mlp seed {r.seed} scores")


def test_a_replica_model_is_the_solo_model_alone_and_round_trips(lambda_group, tmp_path):
    results, solos = lambda_group
    _, _, solo_model = solos[results[1].seed]
    model = results[1].model
    assert model.name == solo_model.name
    assert [layer.name for layer in model.layers] == [layer.name for layer in solo_model.layers]
    assert model.count_params() == solo_model.count_params()  # this replica's weights only
    # its optimizer holds what the solo run's holds (iteration count, learning rate, Adam's moments)
    mine, solo = (
        [np.asarray(v) for v in model.optimizer.variables],
        [np.asarray(v) for v in solo_model.optimizer.variables],
    )
    assert [a.shape for a in mine] == [b.shape for b in solo] and len(mine) == 2 + 2 * len(model.trainable_variables)
    assert all(np.all(np.abs(a.astype(float) - b.astype(float)) <= TOLERANCE) for a, b in zip(mine, solo))
    x = load_dataset(_cfg("lambda_mlp", 1).dataset, 1).test[0][:16]
    path = tmp_path / "replica.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(solo_model(x)), atol=TOLERANCE)
    assert int(loaded.optimizer.iterations) == int(solo_model.optimizer.iterations) == 6  # 2 epochs x 3 batches


def test_a_nan_loss_fails_its_replica_only_with_the_solo_message(lambda_group):
    clean, _ = lambda_group
    results = _fused("lambda_mlp", broken_seed=1, callbacks=[[NanGuard()] for _ in SEEDS])
    assert [r.status for r in results] == ["FINISHED", "FAILED", "FINISHED"]
    with pytest.raises(TrainingError) as solo_error:
        _solo("lambda_mlp", 1, callbacks=[NanGuard()], broken=True)
    assert isinstance(results[1].error, TrainingError)
    assert str(results[1].error) == str(solo_error.value)  # "the training loss became nan at epoch 1, batch 1; ..."
    assert results[1].model is None and results[1].history.history == {}
    for failed_alone, unaffected in ((results[0], clean[0]), (results[2], clean[2])):
        _assert_close(failed_alone.history.history, unaffected.history.history, f"seed {failed_alone.seed}")
        assert all(math.isfinite(v) for v in failed_alone.scores.values())


def test_early_stopping_stops_and_restores_one_replica_while_the_others_train_on():
    # replica 0 stops after its 2nd epoch (no improvement by 10) and gets its 1st epoch's weights back
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0, restore_best_weights=True)
    results = _fused("lambda_mlp", callbacks=[[stop], [], []], epochs=3)
    assert results[0].stopped_epoch == 1 and len(results[0].history.history["loss"]) == 2
    assert [len(r.history.history["loss"]) for r in results[1:]] == [3, 3]
    _, one_epoch, _ = _solo("lambda_mlp", 0, "training.epochs=1")
    _assert_close(results[0].scores, one_epoch, "restored replica 0")


def test_global_clipnorm_is_refused_with_its_config_path():
    with pytest.raises(ConfigError, match="optimizer.args.global_clipnorm") as err:
        _fused("lambda_mlp", SEEDS, "+optimizer.args.global_clipnorm=1.0")
    assert "clipnorm (per variable)" in str(err.value)


def test_replicas_with_different_batch_counts_are_refused():
    cfg = _cfg("lambda_mlp", 0)
    setup_runtime(cfg)
    engine = FusedReplicas(
        lambda seed: prepare(dataclasses.replace(cfg, seed=seed))[1], [0, 1], lambda m: compile_model(m, cfg)
    )
    small = _datasets(cfg, 0)
    large = {**small, "train": small["train"].concatenate(small["train"])}
    with pytest.raises(ConfigError, match="different numbers of train batches") as err:
        engine.fit([small, large], epochs=1)
    assert "dataset" in str(err.value) and "Fix:" in str(err.value)


def test_each_replica_checkpoints_its_own_weights(tmp_path):
    from experiments.training.checkpoint import Checkpointer, load_checkpoint

    folders = [tmp_path / f"seed{seed}" for seed in SEEDS[:2]]
    results = _fused(
        "lambda_mlp",
        SEEDS[:2],
        callbacks=[[Checkpointer(f, f"run{i}", monitor="val_loss", every_s=0)] for i, f in enumerate(folders)],
    )
    x = load_dataset(_cfg("lambda_mlp", 0).dataset, 0).test[0][:16]
    outputs = []
    for r, folder in zip(results, folders):
        epochs_done, last = load_checkpoint(folder)  # what training.resume reads, checked for damage
        assert epochs_done == 2
        np.testing.assert_allclose(np.asarray(last(x)), np.asarray(r.model(x)), atol=TOLERANCE)
        assert (folder / "best.keras").is_file()
        outputs.append(np.asarray(last(x)))
    assert not np.allclose(outputs[0], outputs[1])  # two replicas, two different models


@pytest.mark.parametrize("regularizer", ["kernel_regularizer", "activity_regularizer"])
def test_regularization_losses_are_refused(regularizer):
    def build_one(seed):
        return keras.Sequential(
            [
                keras.Input((28, 28)),
                keras.layers.Flatten(),
                keras.layers.Dense(10, activation="softmax", **{regularizer: "l2"}),
            ]
        )

    with pytest.raises(ConfigError, match="regularization losses") as err:
        FusedReplicas(build_one, [0, 1], lambda m: m.compile(optimizer="adam", loss="sparse_categorical_crossentropy"))
    assert str(err.value).startswith("model = 'sequential") and "Fix:" in str(err.value)


def test_a_resumed_replica_hands_its_optimizer_state_to_the_fused_optimizer():
    from experiments.training.fused.optimizer import SlotMap

    cfg = _cfg("lambda_mlp", 0)
    engine = FusedReplicas(
        lambda seed: prepare(dataclasses.replace(cfg, seed=seed))[1], [0, 1], lambda m: compile_model(m, cfg)
    )
    slots = SlotMap(engine.fused, engine.models)
    assert slots.available
    for i, model in enumerate(engine.models):  # as if loaded from replica i's last.keras
        model.optimizer.build(model.trainable_variables)
        for j, var in enumerate(model.optimizer.variables[2:]):  # after the iteration count and learning rate
            var.assign(np.full(var.shape, 10 * i + j, dtype="float32"))
        slots.from_replica(i)
    fused_values = {float(np.asarray(v).flat[0]) for v in engine.fused.optimizer.variables[2:]}
    assert fused_values == {float(10 * i + j) for i in range(2) for j in range(8)}  # every slot filled, once
    for i, model in enumerate(engine.models):
        for var in model.optimizer.variables[2:]:
            var.assign(np.zeros(var.shape, dtype="float32"))
        slots.to_replica(i)
        assert [float(np.asarray(v).flat[0]) for v in model.optimizer.variables[2:]] == [10.0 * i + j for j in range(8)]


def _engine(model: str, seeds=SEEDS):
    return _engine_with(model, seeds)


def _engine_with(model: str, seeds, *extra: str):
    cfg = _cfg(model, seeds[0], *extra)
    setup_runtime(cfg)
    return cfg, FusedReplicas(
        lambda seed: prepare(dataclasses.replace(cfg, seed=seed))[1], seeds, lambda m: compile_model(m, cfg)
    )


@pytest.mark.parametrize("model", ["lambda_mlp", "class_mlp"])
def test_the_shipped_layer_lists_are_stacked_with_one_product_per_layer(model):
    from experiments.training.fused.stack import StackedDense

    _, engine = _engine(model)
    assert engine.stacked
    stacked = [layer for layer in engine.fused.layers if isinstance(layer, StackedDense)]
    assert stacked and all(len(layer.group) == len(SEEDS) for layer in stacked)
    # the fused model's variables are the replicas' own: nothing new to train or to checkpoint
    assert {id(v) for v in engine.fused.trainable_variables} == {
        id(v) for m in engine.models for v in m.trainable_variables
    }


def test_a_graph_model_falls_back_to_one_branch_per_replica_and_says_so(capsys):
    cfg, engine = _engine("residual_graph", seeds=[0, 1])
    assert not engine.stacked
    assert (
        "layerlab: fused replicas side by side, not stacked: 'residual_graph' is a graph model"
        in capsys.readouterr().out
    )
    results = engine.fit(lambda seed: _datasets(cfg, seed), 1)
    for r in results:
        history, final, _ = _solo("residual_graph", r.seed, "training.epochs=1")
        _assert_close(r.history.history, history, f"residual_graph seed {r.seed} history")
        _assert_close(r.scores, final, f"residual_graph seed {r.seed} scores")


def test_a_stacked_softmax_keeps_the_logits_the_loss_reads():
    """Far from the optimum (SGD at rate 94) the crossentropy from logits and from clipped probabilities differ
    by orders of magnitude: the stack's loss is the solo loss there too."""
    extra = ("optimizer=sgd", "optimizer.learning_rate=94", "training.epochs=1")
    cfg, engine = _engine_with("lambda_mlp", [1, 2], *extra)
    assert engine.stacked
    for r in engine.fit(lambda seed: _datasets(cfg, seed), 1):
        solo = _solo("lambda_mlp", r.seed, *extra)[0]["loss"]
        assert solo[0] > 1e3 and abs(r.history.history["loss"][0] - solo[0]) <= 1e-5 * solo[0]
