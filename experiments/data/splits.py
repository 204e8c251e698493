"""Seeded, stratified train/validation/test splits of a loaded dataset, and the ``limit`` subsample.

Every split is stratified and seeded (scikit-learn ``train_test_split`` with
``stratify=y, random_state=seed``): the same seed gives identical arrays,
another seed other splits, and each split keeps the class balance.
``limit`` caps the total number of samples by a stratified, seeded subsample
taken *before* splitting, so a quick run keeps the class balance too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
    """

    name: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    input_shape: tuple[int, ...]
    origin: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Flat, scalar description of the splits, ready for ``mlflow.log_params``.

        Returns:
            ``dataset_name``, ``train_size``, ``val_size``, ``test_size``,
            ``num_classes``, ``input_shape`` (as ``"28x28"``) and the loader's origin
            (``source``, ``sha256``) when it reports one.
        """
        return {
            "dataset_name": self.name,
            "train_size": int(len(self.train[1])),
            "val_size": int(len(self.val[1])),
            "test_size": int(len(self.test[1])),
            "num_classes": int(self.num_classes),
            "input_shape": "x".join(str(d) for d in self.input_shape),
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
    limit = opts.limit
    if limit is not None and not raw.limited:
        raw = apply_limit(raw, limit, seed)
    if raw.test is None:
        train, val, test = _split_three(raw, opts, seed)
    else:
        train, val = _split_val(raw, opts, seed)
        test = raw.test
    return DataSplits(
        name=opts.name,
        train=train,
        val=val,
        test=test,
        num_classes=raw.num_classes,
        input_shape=tuple(int(d) for d in raw.x.shape[1:]),
        origin=raw.origin,
    )


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


def apply_limit(raw: RawData, limit: int, seed: int) -> RawData:
    """Cap the total number of samples at ``limit`` (stratified, seeded).

    With an official test set, train and test are cut in their original
    proportion so that together they hold ``limit`` samples.

    Args:
        raw: the loaded data.
        limit: the cap.
        seed: seed of the subsample.
    """
    n_test = 0 if raw.test is None else len(raw.test[1])
    total = len(raw.y) + n_test
    if limit >= total:
        return raw
    # At least one test sample when there is a test set, so it never vanishes.
    keep_test = max(1, round(limit * n_test / total)) if n_test else 0
    keep_train = limit - keep_test
    idx = stratified_indices(raw.y, keep_train, seed)
    test = raw.test
    if test is not None:
        tidx = stratified_indices(test[1], keep_test, seed + 1)
        test = (test[0][tidx], test[1][tidx])
    return RawData(x=raw.x[idx], y=raw.y[idx], num_classes=raw.num_classes, test=test, limited=True, origin=raw.origin)


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


def _split(x: np.ndarray, y: np.ndarray, n_hold: int, seed: int):
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
        x_a, x_b, y_a, y_b = train_test_split(x, y, test_size=n_hold, stratify=y, random_state=seed)
    except ValueError as exc:  # e.g. a class with a single sample
        raise DataError(
            f"cannot split {len(y)} samples stratified ({exc})",
            fix="use more samples (dataset.limit=null) or a dataset with at least two samples per class",
        ) from exc
    return (x_a, y_a), (x_b, y_b)


def _split_three(raw: RawData, opts: dict, seed: int):
    """Train/val/test of a dataset without an official test set.

    Args:
        raw: the (limited) data.
        opts: ``val_fraction`` and ``test_fraction`` (of the whole dataset).
        seed: seed of both splits.
    """
    n, k = len(raw.y), len(np.unique(raw.y))
    vf, tf_ = opts.val_fraction, opts.test_fraction
    sizes = _three_sizes(n, vf, tf_)
    if min(sizes.values()) < k:
        need = max(n, 3 * k)
        while min(_three_sizes(need, vf, tf_).values()) < k:
            need += 1
        raise _too_few(opts, n, sizes, k, need)
    rest, test = _split(raw.x, raw.y, sizes["test"], seed)
    train, val = _split(rest[0], rest[1], sizes["val"], seed)
    return train, val, test


def _split_val(raw: RawData, opts: dict, seed: int):
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
    n, k = len(raw.y), len(np.unique(raw.y))
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
    return _split(raw.x, raw.y, n_val, seed)
