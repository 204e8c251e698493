"""The layer library against the lecture's own printed figures, and its registry."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import layers
from layers import ComputeSum, ComputeSum2, PreProcess, ResidualDense, SimpleDense


def test_rectifier_matches_lecture_3_3():
    x = np.array([np.linspace(-2.0, 3.0, num=5), np.linspace(-3.0, 1.0, num=5)], dtype="float32")
    y = np.asarray(layers.rectifier(x))
    expected = np.array(
        [[0.0, 0.0, 0.5, 1.75, 3.0, 2.0, 0.75, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 2.0, 1.0, 0.0, 0.0]],
        dtype="float32",
    )
    assert y.shape == (2, 10)
    np.testing.assert_allclose(y, expected)


def test_square_absolute_rescale():
    x = np.array([[-3.0, 0.5, 2.0]], dtype="float32")
    np.testing.assert_allclose(layers.square(x), [[9.0, 0.25, 4.0]])
    np.testing.assert_allclose(layers.absolute(x), [[3.0, 0.5, 2.0]])
    img = np.array([[0, 51, 255]], dtype="uint8")
    out = layers.rescale(img)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]])
    np.testing.assert_allclose(layers.rescale(img, divisor=51.0), [[0.0, 1.0, 5.0]])


def test_preprocess_matches_lecture_5_4():
    y = PreProcess(output_dim=6)(np.ones((2, 3, 2)))
    assert tuple(y.shape) == (2, 6)
    np.testing.assert_allclose(y, np.full((2, 6), 0.00392157), rtol=1e-6)
    assert len(PreProcess(6).weights) == 0


def test_preprocess_infers_and_checks_output_dim():
    layer = PreProcess()
    assert tuple(layer(np.ones((4, 7, 3), dtype="uint8")).shape) == (4, 21)
    assert layer.output_dim == 21
    with pytest.raises(ValueError, match="output_dim=5 but each input sample has 6 values"):
        PreProcess(5)(np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="positive integer"):
        PreProcess(0)


@pytest.mark.parametrize("make", [lambda: ComputeSum(3), lambda: ComputeSum2()], ids=["ComputeSum", "ComputeSum2"])
def test_compute_sum_matches_lecture_5_5_and_tracks_its_state(make):
    layer = make()
    x = np.ones((2, 3), dtype="float32")
    np.testing.assert_allclose(layer(x), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(layer(x), [4.0, 4.0, 4.0])
    # The lecture's raw tf.Variable gave 0 weights; here the sum is one tracked non-trainable weight.
    assert len(layer.weights) == 1
    assert len(layer.non_trainable_weights) == 1
    assert len(layer.trainable_weights) == 0


def test_compute_sum_checks_width():
    with pytest.raises(ValueError, match="input_dim=4 but the input is 3 wide"):
        ComputeSum(4)(np.ones((2, 3), dtype="float32"))
    with pytest.raises(ValueError, match="positive integer"):
        ComputeSum(-1)


def test_simple_dense_has_two_weights_and_applies_activation():
    layer = SimpleDense(units=1, activation="relu")
    y = layer(np.ones((1, 2), dtype="float32"))
    assert len(layer.weights) == 2 and len(layer.trainable_weights) == 2
    assert tuple(layer.weights[0].shape) == (2, 1) and tuple(layer.weights[1].shape) == (1,)
    assert float(np.asarray(y)[0, 0]) >= 0.0
    with pytest.raises(ValueError, match="`units` must be a positive integer"):
        SimpleDense(units=0)


def test_residual_dense_weights_params_and_width_error():
    layer = ResidualDense(128, activation="relu")
    layer(np.ones((2, 128), dtype="float32"))
    assert len(layer.weights) == 4 and len(layer.trainable_weights) == 4
    assert layer.count_params() == 33_024
    small = ResidualDense(units=5, activation="relu")
    assert tuple(small(np.ones((2, 5), dtype="float32")).shape) == (2, 5)
    with pytest.raises(ValueError, match="units=64 but the input is 128 wide.*set units=128"):
        ResidualDense(64, activation="relu")(np.ones((2, 128), dtype="float32"))


def test_abs_works_as_an_activation_name_everywhere():
    x = np.array([[-1.0, 2.0]], dtype="float32")
    for layer in (SimpleDense(2, activation="abs"), ResidualDense(2, activation="abs")):
        assert np.all(np.asarray(layer(x)) >= 0.0)
    assert layers.resolve_activation("abs") is layers.absolute
    assert layers.resolve_activation("relu") is keras.activations.relu
    dense = keras.layers.Dense(3, activation=layers.get_function("abs"))
    assert np.all(np.asarray(dense(x)) >= 0.0)
    with pytest.raises(KeyError, match="did you mean 'abs'"):
        layers.get_function("abss")


def _every_layer_model() -> keras.Model:
    """A functional model that uses every layer class and every function of the library."""
    image = keras.Input((4, 4), dtype="uint8", name="image")
    flat = PreProcess(name="pre")(image)  # (16,)
    sq = keras.layers.Lambda(layers.square, name="square")(flat)
    ab = keras.layers.Lambda(layers.absolute, name="abs")(sq)
    rect = keras.layers.Lambda(layers.rectifier, name="rect")(ab)  # (32,)
    h = SimpleDense(8, activation="abs", name="sd")(rect)
    r = ResidualDense(8, activation="relu", name="res")(h)
    d = keras.layers.Dense(8, activation=layers.absolute, name="dense_abs")(r)
    resc = keras.layers.Lambda(layers.rescale, arguments={"divisor": 2.0}, name="resc")(d)
    out = SimpleDense(3, activation="softmax", name="out")(resc)
    s1 = ComputeSum(8, name="sum1")(h)
    s2 = ComputeSum2(name="sum2")(h)
    return keras.Model(image, [out, s1, s2])


def test_every_layer_round_trips_through_save_and_safe_load(tmp_path):
    model = _every_layer_model()
    x = np.random.default_rng(0).integers(0, 256, size=(5, 4, 4)).astype("uint8")
    before = [np.asarray(t) for t in model(x)]  # also advances the running sums once
    path = tmp_path / "every_layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    # Same weights, including the non-trainable running sums that the lecture's version lost.
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    sums = {w.path: np.asarray(w) for w in loaded.weights if "total" in w.path}
    assert len(sums) == 2 and all(np.any(v != 0) for v in sums.values())
    after_model = [np.asarray(t) for t in model(x)]
    after_loaded = [np.asarray(t) for t in loaded(x)]
    for a, b in zip(after_model, after_loaded):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(after_model[0], before[0], rtol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        SimpleDense(4, activation="abs"),
        ResidualDense(4, activation="rectifier"),
        PreProcess(6, scale=2.0),
        ComputeSum(3),
        ComputeSum2(),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_has_every_constructor_argument(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_registry_resolves_keras_and_project_layers():
    reg = layers.layer_registry
    for name in (
        "Dense",
        "Conv2D",
        "Flatten",
        "Dropout",
        "BatchNormalization",
        "Add",
        "Concatenate",
        "MaxPooling2D",
        "Lambda",
    ):
        assert reg.get(name) is getattr(keras.layers, name)
    for cls in (SimpleDense, ResidualDense, PreProcess, ComputeSum, ComputeSum2):
        assert reg.get(cls.__name__) is cls
    assert {"SimpleDense", "Dense", "ResidualDense"} <= set(reg.names())
    assert {"square", "absolute", "rescale", "rectifier"} <= set(layers.functions.names())
    assert "abs" in layers.functions


def test_registry_miss_names_the_registry_and_suggests():
    with pytest.raises(KeyError) as info:
        layers.layer_registry.get("ResidualDens")
    msg = str(info.value)
    assert "no layer named 'ResidualDens' in the layer registry" in msg
    assert "did you mean 'ResidualDense'" in msg
    assert "register_layer" in msg and "registry.modules" in msg


def test_registering_a_name_twice_raises():
    reg = layers.Registry("thing")
    reg.register(int, name="x")
    with pytest.raises(KeyError, match="thing 'x' is already registered"):
        reg.register(float, name="x")
    with pytest.raises(KeyError, match="layer 'SimpleDense' is already registered"):

        @layers.register_layer(name="SimpleDense", package="other")
        class SimpleDense2(keras.layers.Layer):
            pass


def test_user_module_adds_a_layer():
    layers.load_modules(["tests.fixtures.user_layers"])
    scale = layers.layer_registry.get("Scale")
    np.testing.assert_allclose(scale(3.0)(np.ones((1, 2), dtype="float32")), [[3.0, 3.0]])
    layers.load_modules(["tests.fixtures.user_layers"])  # loading again is harmless


def test_unimportable_user_module_says_so():
    with pytest.raises(
        KeyError, match="cannot import the registry module 'tests.fixtures.broken_module'.*fancy_missing_dep"
    ):
        layers.load_modules(["tests.fixtures.broken_module"])
