"""One split as a batched, prefetched, seeded-shuffle ``tf.data.Dataset``."""

from __future__ import annotations

import functools
import numbers
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.errors import ConfigError, DataError


@dataclass(frozen=True)
class ResidentSplit:
    """What a dataset made by :func:`make_tf_dataset` gathers its batches from, so that a train step can gather
    them itself from the resident tensors (no ``tf.data`` iterator per step, :mod:`experiments.training.resident`).

    Attributes:
        x, y: the split as two tensors.
        batch_size: samples per batch (the last one may be smaller).
        draws: a dataset of one element, the epoch's random number; each iteration (epoch) gives the number the
            dataset itself draws for that epoch (the same seed generator), so ``order(draw)`` is its order.
        order: ``draw -> `` the epoch's order of sample indices (a ``tf.function``; None when not shuffled).
        shuffle: whether the orders are shuffled (else the batches are contiguous slices).
    """

    x: Any
    y: Any
    batch_size: int
    draws: Any
    shuffle: bool
    order: Any = None

    @property
    def steps(self) -> int:
        return -(-int(self.x.shape[0]) // self.batch_size)


_RESIDENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def resident_split(dataset) -> ResidentSplit | None:
    """The resident tensors and epoch orders behind a dataset of :func:`make_tf_dataset` (None for any other)."""
    try:
        return _RESIDENT.get(dataset)
    except TypeError:  # not weak-referenceable: not one of ours
        return None


def with_same_batches(dataset, source):
    """Record that ``dataset`` gives the batches of ``source`` (e.g. ``source.with_options(...)``); returns it."""
    split = resident_split(source)
    if split is not None:
        _RESIDENT[dataset] = split
    return dataset


def make_tf_dataset(x, y, batch_size: int, *, shuffle: bool, seed: int):
    """Wrap arrays in a batched, prefetched ``tf.data.Dataset``.

    The arrays stay resident as two tensors; a batch is gathered from them by
    the indices of one seeded permutation per epoch (a slice when not
    shuffled): no copy of the images is shuffled, no per-sample work is done
    outside the gather.

    Args:
        x: images, first axis = samples (kept as their dtype, e.g. uint8).
        y: labels, one per image.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: a new order every epoch (training) or the arrays' order
            (evaluation).
        seed: seed of the shuffle: the same seed gives the same sequence of
            epoch orders; each iteration of the dataset (epoch) a new one.

    Returns:
        A dataset of ``(x_batch, y_batch)`` tensors.

    Raises:
        ConfigError: ``batch_size`` is not a positive integer.
        DataError: ``x`` and ``y`` differ in length or are empty.
    """
    import tensorflow as tf  # imported here so configs can be checked without TF

    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ConfigError(
            "batch_size must be a positive integer",
            path="batch_size",
            value=batch_size,
            fix="set the training batch size to an integer such as 32 or 128",
        )
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise DataError(
            f"images and labels must be non-empty and of equal length, got {len(x)} images and {len(y)} labels",
            fix="pass the two arrays of one split, e.g. splits.train",
        )
    n, bs = len(x), int(batch_size)
    x_t = tf.convert_to_tensor(x)
    y_t = tf.convert_to_tensor(y)
    steps = -(-n // bs)
    if not shuffle:
        # Contiguous slices: no gather, no per-sample work.
        ds = tf.data.Dataset.range(steps).map(lambda b: (x_t[b * bs : (b + 1) * bs], y_t[b * bs : (b + 1) * bs]))
        ds = ds.prefetch(tf.data.AUTOTUNE)
        _RESIDENT[ds] = ResidentSplit(x_t, y_t, bs, None, False)
        return ds
    seed = int(seed) % 2**31
    # One permutation of all sample indices per epoch, drawn in one op: Dataset.shuffle over single indices costs a
    # buffer insertion per sample (most of a small model's step, BENCHMARKS.md). One function, traced once per
    # process, for the dataset and the resident path alike: a new tf.function per split retraced for every
    # replica of a fused group, and TensorFlow warned about it.
    shared = _epoch_order()
    n_t, seed_t = tf.constant(n, tf.int64), tf.constant(seed, tf.int64)

    def epoch_order(r):
        return shared(n_t, seed_t, r)

    def batches(order):
        return tf.data.Dataset.range(steps).map(
            lambda b: (tf.gather(x_t, order[b * bs : (b + 1) * bs]), tf.gather(y_t, order[b * bs : (b + 1) * bs]))
        )

    # A new random number for each iteration (epoch), the same sequence for the same seed: a new order each
    # epoch, reproducible run to run.
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    ds = draws.map(epoch_order).flat_map(batches).apply(tf.data.experimental.assert_cardinality(steps))
    ds = ds.prefetch(tf.data.AUTOTUNE)  # (the cardinality: Keras and fusing read it)
    # The resident path iterates ``draws`` alone (an iterator of a map costs several times more per epoch).
    _RESIDENT[ds] = ResidentSplit(x_t, y_t, bs, draws, True, epoch_order)
    return ds


@functools.cache
def _epoch_order():
    """``(n, seed, draw) -> `` one seeded permutation of ``range(n)`` (a ``tf.function`` for every split)."""
    import tensorflow as tf

    scalar = tf.TensorSpec([], tf.int64)

    @tf.function(input_signature=[scalar, scalar, scalar], autograph=False)
    def order(n, seed, draw):
        return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, draw]))

    return order
