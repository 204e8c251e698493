"""The dataset options beyond MNIST: image folders (streamed), tables, .npz arrays, Fashion-MNIST files; their
provenance; all on tiny files written into tmp_path (no network, no Debian package)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from experiments.data import load_dataset
from experiments.errors import DataError
from tests import datasets_fixtures as fx


def _folder(tmp_path, **kw):
    return {"name": "image_folder", "path": str(fx.image_folder(tmp_path / "img", **kw)), "image_size": [8, 8]}


def test_image_folder_streams_paths_with_labels_from_folder_names(tmp_path):
    opts = _folder(tmp_path, per_class=15)
    data = load_dataset(opts, seed=0)
    assert data.class_names == ("cat", "dog") and data.task == "binary" and data.output_units == 1
    assert data.input_shape == (8, 8, 3)
    assert data.train[0].dtype.kind == "U"  # paths, not pixels: the images stay on disk
    assert sum(len(y) for _, y in (data.train, data.val, data.test)) == 30
    for _, y in (data.train, data.val, data.test):  # stratified: both classes in every split
        assert set(y.tolist()) == {0, 1}
    again = load_dataset(opts, seed=0)
    assert list(again.test[0]) == list(data.test[0])  # seeded
    assert list(load_dataset(opts, seed=1).test[0]) != list(data.test[0])
    batches = list(data.tf_dataset("train", 8, shuffle=True, seed=0))
    x, y = batches[0]
    assert x.dtype.name == "uint8" and tuple(x.shape) == (8, 8, 8, 3)
    # labels match the folder each file came from
    by_path = dict(zip(data.train[0], data.train[1]))
    assert all(by_path[p] == (0 if "/cat/" in p else 1) for p in data.train[0])
    images, _ = data.arrays("test")
    dark = images[data.test[1] == 0].mean()
    bright = images[data.test[1] == 1].mean()
    assert dark < bright  # the fixture's cats are darker: the pixels decoded are the files'


def test_image_folder_train_test_layout_grayscale_and_more_classes(tmp_path):
    root = fx.image_folder(tmp_path / "img", classes=("a", "b", "c"), per_class=12, split=True)
    data = load_dataset(
        {"name": "image_folder", "path": str(root), "image_size": [6, 5], "color_mode": "grayscale"}, seed=0
    )
    assert data.task == "classification" and data.num_classes == 3 and data.output_units == 3
    assert data.input_shape == (6, 5, 1) and len(data.test[1]) == 12  # the test/ folder, 4 per class
    assert all("/test/" in p for p in data.test[0]) and all("/train/" in p for p in data.train[0])
    assert data.arrays("val")[0].shape[1:] == (6, 5, 1)


def test_image_folder_digest_covers_every_file(tmp_path):
    opts = _folder(tmp_path, per_class=10)
    first = load_dataset(opts, seed=0).origin["sha256"]
    last = sorted((tmp_path / "img" / "dog").iterdir())[-1]
    fx.image_folder(tmp_path / "other", per_class=1, seed=5)
    last.write_bytes((tmp_path / "other" / "dog" / "dog_000.png").read_bytes())
    assert load_dataset(opts, seed=0).origin["sha256"] != first


def test_table_encodes_categories_and_standardises_on_the_training_split_only(tmp_path):
    import pandas as pd

    path = fx.table(tmp_path / "t.csv", n=200)
    data = load_dataset({"name": "table", "path": str(path), "target": "label"}, seed=0)
    assert data.class_names == ("big", "small") and data.task == "binary"
    assert data.origin["features"] == "size,rooms,color_blue,color_green,color_red"
    x_train, x_test = data.train[0], data.test[0]
    np.testing.assert_allclose(x_train[:, :2].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x_train[:, :2].std(axis=0), 1, atol=1e-4)
    assert set(np.unique(x_train[:, 2:])) == {0.0, 1.0}  # one-hot, not standardised
    # One affine map for all splits (sorted standardised values against sorted raw sizes lie on a line) whose
    # statistics are the training split's (its column has mean 0, std 1 above); the test split's own mean is not 0.
    every = np.concatenate([x_train[:, 0], data.val[0][:, 0], x_test[:, 0]])
    raw = np.sort(pd.read_csv(path)["size"].to_numpy())
    slope, intercept = np.polyfit(np.sort(every), raw, 1)
    np.testing.assert_allclose(np.sort(every) * slope + intercept, raw, rtol=1e-4)
    assert abs(x_test[:, 0].mean()) > 1e-3


def test_table_regression_keeps_the_target_in_its_units_with_the_training_statistics(tmp_path):
    path = fx.table(tmp_path / "r.csv", n=150, regression=True)
    data = load_dataset({"name": "table", "path": str(path), "target": "price", "features": ["size", "color"]}, 0)
    assert data.task == "regression" and data.output_units == 1 and data.input_shape == (4,)
    y = data.train[1]
    assert y.dtype == np.float32 and y.mean() > 1e5  # its own units, not standardised
    mean, std = data.target_scale
    assert mean == pytest.approx(float(np.mean(y.astype(np.float64))), rel=1e-6)
    assert std == pytest.approx(float(np.std(y.astype(np.float64))), rel=1e-6)


def test_table_reads_parquet(tmp_path):
    import pandas as pd

    csv = fx.table(tmp_path / "t.csv", n=60)
    pd.read_csv(csv).to_parquet(tmp_path / "t.parquet")
    a = load_dataset({"name": "table", "path": str(csv), "target": "label"}, seed=0)
    b = load_dataset({"name": "table", "path": str(tmp_path / "t.parquet"), "target": "label"}, seed=0)
    np.testing.assert_allclose(a.train[0], b.train[0], rtol=1e-6)
    assert a.origin["sha256"] != b.origin["sha256"]  # the digest is of the file read


def test_arrays_with_and_without_an_official_test_split(tmp_path):
    with_test = load_dataset({"name": "arrays", "path": str(fx.npz(tmp_path / "a.npz"))}, seed=0)
    assert len(with_test.test[1]) == 30 and with_test.input_shape == (6, 6) and with_test.num_classes == 3
    assert with_test.train[0].dtype == np.uint8
    split = load_dataset(
        {"name": "arrays", "path": str(fx.npz(tmp_path / "b.npz", test=False)), "test_fraction": 0.2}, seed=0
    )
    assert len(split.test[1]) == 18
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    np.savez(tmp_path / "c.npz", feats=x, names=np.array(["no", "yes"] * 20))
    named = load_dataset({"name": "arrays", "path": str(tmp_path / "c.npz"), "x_key": "feats", "y_key": "names"}, 0)
    assert named.class_names == ("no", "yes") and named.task == "binary" and named.input_shape == (3,)


def test_builtin_datasets_carry_their_provenance():
    data = load_dataset({"name": "digits", "limit": 200}, seed=0)
    assert data.origin["source"] == "scikit-learn" and len(data.origin["sha256"]) == 64
    assert data.summary()["sha256"] == data.origin["sha256"]


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_fashion_mnist_reads_idx_and_refuses_files_that_are_not_the_official_ones(tmp_path):
    from experiments.data.fashion_mnist import FILES, read_idx

    images = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    np.testing.assert_array_equal(read_idx(_idx(images)), images)
    for stem in FILES:
        (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(_idx(images if "images" in stem else np.arange(2))))
    with pytest.raises(DataError) as err:
        load_dataset({"name": "fashion_mnist", "path": str(tmp_path)}, seed=0)
    assert err.value.path == "dataset.path" and "not the official Fashion-MNIST file" in str(err.value)
    with pytest.raises(DataError) as err:
        load_dataset({"name": "fashion_mnist", "path": str(tmp_path / "none")}, seed=0)
    assert "scripts/install_fashion_mnist.sh" in str(err.value)


def test_table_categories_come_from_the_training_split_only(tmp_path):
    import pandas as pd

    df = pd.read_csv(fx.table(tmp_path / "t.csv", n=120))
    df["row"] = np.arange(len(df), dtype=np.float64)  # to find each row again after the shuffled split
    df.loc[:9, "color"] = [f"rare{i}" for i in range(10)]  # ten categories of one row each: some miss training
    df[["row", "color", "label"]].to_csv(tmp_path / "rare.csv", index=False)
    data = load_dataset({"name": "table", "path": str(tmp_path / "rare.csv"), "target": "label"}, seed=0)
    splits = {s: getattr(data, s)[0] for s in ("train", "val", "test")}
    # Standardisation is one increasing affine map, so the rank of the `row` column among all rows is the row.
    rows = np.argsort(np.argsort(np.concatenate([x[:, 0] for x in splits.values()])))
    rows = dict(zip(splits, np.split(rows, np.cumsum([len(x) for x in splits.values()])[:-1])))
    seen = sorted(set(df["color"].iloc[rows["train"]]))
    unseen = set(df["color"]) - set(seen)
    assert unseen and set(seen) & {f"rare{i}" for i in range(10)}  # the split gives both cases
    assert data.origin["features"] == ",".join(["row", *(f"color_{c}" for c in seen)])
    assert data.input_shape == (1 + len(seen),)
    for split, x in splits.items():
        unknown = df["color"].iloc[rows[split]].isin(unseen).to_numpy()
        assert split != "train" or not unknown.any()
        np.testing.assert_array_equal(x[:, 1:].sum(axis=1), np.where(unknown, 0.0, 1.0))  # unknown: all zeros
