"""Seeded, stratified train/validation/test splits of a loaded dataset, and the ``limit`` subsample.

Every split is stratified and seeded (scikit-learn ``train_test_split`` with
``stratify=y, random_state=seed``): the same seed gives identical arrays,
another seed other splits, and each split keeps the class balance.
``limit`` caps the total number of samples by a stratified, seeded subsample
taken *before* splitting, so a quick run keeps the class balance too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.data.raw import RawData
from experiments.errors import ConfigError, DataError


@dataclass(eq=False)  # eq on numpy arrays is ambiguous: compare fields yourself
class DataSplits:
    """Train, validation and test arrays of one dataset.

    Args:
        name: the dataset option (``mnist_sample``, ``mnist``, ...).
        train: ``(x, y)``: ``x`` uint8 images of shape ``(n, *input_shape)``,
            ``y`` int64 labels in ``0..num_classes-1``.
        val: the validation split, same layout.
        test: the test split, same layout.
        num_classes: number of classes the model must predict.
        input_shape: per-sample shape, e.g. ``(28, 28)`` or ``(32, 32, 3)``.
        origin: the loader's ``RawData.origin`` (source, digest), logged with the summary.
        task: ``classification``, ``binary`` or ``regression`` (the loader's, or inferred from the labels).
        class_names: the name of each class index, when the data has names (folders, string labels).
        stream: the loader's reader of file paths (``image_folder``); ``None`` when ``x`` holds the samples.
        target_scale: ``(mean, std)`` of a regression target over the training split, else ``None``.
    """

    name: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    input_shape: tuple[int, ...]
    origin: dict = field(default_factory=dict)
    task: str = "classification"
    class_names: tuple[str, ...] | None = None
    stream: Any = None
    target_scale: tuple[float, float] | None = None

    @property
    def output_units(self) -> int:
        """Units of the model's last layer: one per class, or one (a sigmoid for binary, the value for regression)."""
        return 1 if self.task in ("binary", "regression") else int(self.num_classes)

    def tf_dataset(self, split: str, batch_size: int, *, shuffle: bool, seed: int):
        """One split (``train``, ``val``, ``test``) as a batched ``tf.data.Dataset``, in memory or streamed from
        disk."""
        x, y = getattr(self, split)
        if self.stream is not None:
            return self.stream.dataset(x, y, batch_size, shuffle=shuffle, seed=seed)
        from experiments.data.tfdata import make_tf_dataset

        return make_tf_dataset(x, y, batch_size, shuffle=shuffle, seed=seed)

    def arrays(self, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` samples of a split as in-memory arrays (streamed data decoded), for plots and
        examples."""
        x, y = getattr(self, split)
        if limit is not None:
            x, y = x[:limit], y[:limit]
        if self.stream is None:
            return x, y
        return self.stream.decode(x), y

    def summary(self) -> dict:
        """Flat, scalar description of the splits, ready for ``mlflow.log_params``.

        Returns:
            ``dataset_name``, ``train_size``, ``val_size``, ``test_size``,
            ``num_classes``, ``input_shape`` (as ``"28x28"``), ``task``, ``class_names`` and the target's
            ``target_mean``/``target_std`` when there are any, and the loader's origin (``source``, ``sha256``).
        """
        return {
            "dataset_name": self.name,
            "train_size": int(len(self.train[1])),
            "val_size": int(len(self.val[1])),
            "test_size": int(len(self.test[1])),
            "num_classes": int(self.num_classes),
            "input_shape": "x".join(str(d) for d in self.input_shape),
            "task": self.task,
            **({"class_names": ",".join(self.class_names)[:500]} if self.class_names else {}),
            **({"target_mean": self.target_scale[0], "target_std": self.target_scale[1]} if self.target_scale else {}),
            **self.origin,
        }


def make_splits(raw: RawData, opts: dict, seed: int) -> DataSplits:
    """Apply ``limit`` (unless the loader did) and split, stratified and seeded.

    Args:
        raw: what the loader returned.
        opts: the checked ``dataset`` options (``name``, ``limit``,
            ``val_fraction``, ``test_fraction``, ...).
        seed: seed of the subsample and the splits.
    """
    task = raw.resolved_task()
    limit = opts.limit
    if limit is not None and not raw.limited:
        raw = apply_limit(raw, limit, seed, stratify=task != "regression")
    if raw.test is None:
        train, val, test = _split_three(raw, opts, seed, stratify=task != "regression")
    else:
        train, val = _split_val(raw, opts, seed, stratify=task != "regression")
        test = raw.test
    origin = raw.origin
    if raw.encode is not None:  # fitted on the training rows only, so validation and test never inform it
        encoder = raw.encode.fit(train[0])
        train, val, test = ((encoder.transform(x), y) for x, y in (train, val, test))
        if hasattr(encoder, "get_feature_names_out"):
            origin = {**origin, "features": ",".join(encoder.get_feature_names_out())[:500]}
    if raw.standardize:
        train, val, test = _standardize(train, val, test, list(raw.standardize))
    target_scale = None
    if task == "regression":
        y = np.asarray(train[1], dtype=np.float64)
        target_scale = (float(y.mean()), float(y.std()) or 1.0)
    shape = raw.stream.input_shape if raw.stream is not None else train[0].shape[1:]
    return DataSplits(
        name=opts.name,
        train=train,
        val=val,
        test=test,
        num_classes=raw.num_classes,
        input_shape=tuple(int(d) for d in shape),
        origin=origin,
        task=task,
        class_names=tuple(raw.class_names) if raw.class_names else None,
        stream=raw.stream,
        target_scale=target_scale,
    )


def _standardize(train, val, test, columns: list[int]):
    """Standardise ``columns`` of every split by the training split's mean and standard deviation."""
    mean = train[0][:, columns].mean(axis=0)
    std = train[0][:, columns].std(axis=0)
    std[std == 0] = 1.0  # a constant column stays constant (0) instead of dividing by zero

    def apply(split):
        x = np.array(split[0], dtype=np.float32, copy=True)
        x[:, columns] = (x[:, columns] - mean) / std
        return x, split[1]

    return apply(train), apply(val), apply(test)


def stratified_indices(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded subsample of ``n`` labels with the class proportions of ``y``.

    Per-class quotas by largest remainder (so they sum to ``n`` exactly);
    unlike ``train_test_split`` this works whatever few samples are dropped.

    Args:
        y: labels of the whole set.
        n: samples to keep (``<= len(y)``).
        seed: the same seed keeps the same samples.

    Returns:
        Sorted indices into ``y``.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (n / len(y))
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - int(take.sum())]] += 1
    picked = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(picked))


def _subsample(y: np.ndarray, n: int, seed: int, stratify: bool) -> np.ndarray:
    if stratify:
        return stratified_indices(y, n, seed)
    return np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))


def apply_limit(raw: RawData, limit: int, seed: int, stratify: bool = True) -> RawData:
    """Cap the total number of samples at ``limit`` (stratified, seeded).

    With an official test set, train and test are cut in their original
    proportion so that together they hold ``limit`` samples.

    Args:
        raw: the loaded data.
        limit: the cap.
        seed: seed of the subsample.
        stratify: keep the class proportions (not for a regression target).
    """
    n_test = 0 if raw.test is None else len(raw.test[1])
    total = len(raw.y) + n_test
    if limit >= total:
        return raw
    # At least one test sample when there is a test set, so it never vanishes.
    keep_test = max(1, round(limit * n_test / total)) if n_test else 0
    keep_train = limit - keep_test
    idx = _subsample(raw.y, keep_train, seed, stratify)
    test = raw.test
    if test is not None:
        tidx = _subsample(test[1], keep_test, seed + 1, stratify)
        test = (test[0][tidx], test[1][tidx])
    return dataclasses.replace(raw, x=raw.x[idx], y=raw.y[idx], test=test, limited=True)


def _too_few(opts: dict, n: int, sizes: dict[str, int], k: int, need: int) -> ConfigError:
    """The error for splits too small to hold every class.

    Args:
        opts: the dataset options (to blame ``limit`` or ``num_samples``).
        n: samples available.
        sizes: split name -> size.
        k: classes present.
        need: the smallest total that works with these fractions.
    """
    key = "limit" if opts.limit is not None else ("num_samples" if hasattr(opts, "num_samples") else "val_fraction")
    split_text = ", ".join(f"{s} {v}" for s, v in sizes.items())
    return ConfigError(
        f"{n} samples give splits of {split_text}, but a stratified split needs at least one sample "
        f"per class ({k}) in each",
        path=f"dataset.{key}",
        value=getattr(opts, key),
        fix=f"use at least {need} samples (raise dataset.limit or set it to null) or raise the smaller fraction",
    )


def _three_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Split sizes for ``n`` samples: val and test rounded, train the rest."""
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    return {"train": n - n_test - n_val, "val": n_val, "test": n_test}


def _split(x: np.ndarray, y: np.ndarray, n_hold: int, seed: int, stratify: bool = True):
    """Stratified, seeded split of ``n_hold`` samples off ``(x, y)``.

    Args:
        x: images.
        y: labels (stratified on).
        n_hold: size of the held-out part.
        seed: ``random_state`` of ``train_test_split``.

    Returns:
        ``((x_rest, y_rest), (x_hold, y_hold))``, both shuffled.
    """
    from sklearn.model_selection import train_test_split

    try:
        x_a, x_b, y_a, y_b = train_test_split(
            x, y, test_size=n_hold, stratify=y if stratify else None, random_state=seed
        )
    except ValueError as exc:  # e.g. a class with a single sample
        raise DataError(
            f"cannot split {len(y)} samples stratified ({exc})",
            fix="use more samples (dataset.limit=null) or a dataset with at least two samples per class",
        ) from exc
    return (x_a, y_a), (x_b, y_b)


def _split_three(raw: RawData, opts: dict, seed: int, stratify: bool = True):
    """Train/val/test of a dataset without an official test set.

    Args:
        raw: the (limited) data.
        opts: ``val_fraction`` and ``test_fraction`` (of the whole dataset).
        seed: seed of both splits.
    """
    n, k = len(raw.y), (len(np.unique(raw.y)) if stratify else 1)
    vf, tf_ = opts.val_fraction, opts.test_fraction
    sizes = _three_sizes(n, vf, tf_)
    if min(sizes.values()) < k:
        need = max(n, 3 * k)
        while min(_three_sizes(need, vf, tf_).values()) < k:
            need += 1
        raise _too_few(opts, n, sizes, k, need)
    rest, test = _split(raw.x, raw.y, sizes["test"], seed, stratify)
    train, val = _split(rest[0], rest[1], sizes["val"], seed, stratify)
    return train, val, test


def _split_val(raw: RawData, opts: dict, seed: int, stratify: bool = True):
    """Train/val of a dataset with an official test set (``test_fraction`` ignored).

    Args:
        raw: the (limited) data; ``raw.x`` is the official train set.
        opts: ``val_fraction`` (of the official train set); ``validation_set=official_test`` (mnist) trains on
            the whole official train set and validates on the official test set instead.
        seed: seed of the split.
    """
    # the lecture's protocol (conf/dataset/mnist.yaml)
    if getattr(opts, "validation_set", "held_out") == "official_test":
        return (raw.x, raw.y), raw.test
    n, k = len(raw.y), (len(np.unique(raw.y)) if stratify else 1)
    vf = opts.val_fraction
    n_val = round(vf * n)
    if min(n_val, n - n_val) < k:
        need = max(n, 2 * k)
        while min(round(vf * need), need - round(vf * need)) < k:
            need += 1
        if raw.test is not None and opts.limit is not None:
            # limit counts the official test samples too: scale up to the total.
            need = math.ceil(need * (n + len(raw.test[1])) / n)
        raise _too_few(opts, n, {"train": n - n_val, "val": n_val}, k, need)
    return _split(raw.x, raw.y, n_val, seed, stratify)
