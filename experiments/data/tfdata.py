"""One split as a batched, prefetched, seeded-shuffle ``tf.data.Dataset``."""

from __future__ import annotations

import numbers

import numpy as np

from experiments.errors import ConfigError, DataError


def make_tf_dataset(x, y, batch_size: int, *, shuffle: bool, seed: int):
    """Wrap arrays in a batched, prefetched ``tf.data.Dataset``.

    Only sample *indices* go through the shuffle buffer and the batches are
    gathered from the arrays afterwards: shuffling 500k images then costs 4 MB
    of indices instead of a second copy of the images.

    Args:
        x: images, first axis = samples (kept as their dtype, e.g. uint8).
        y: labels, one per image.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: reshuffle the order every epoch (training) or keep it
            (evaluation).
        seed: seed of the shuffle: the same seed gives the same order of
            epochs, ``reshuffle_each_iteration=True`` gives a new order each
            epoch.

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
    n = len(x)
    x_t = tf.convert_to_tensor(x)
    y_t = tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        # A buffer as large as the split gives a uniform shuffle; the op seed
        # alone makes the order reproducible (TF supplies a fixed graph seed).
        ds = ds.shuffle(n, seed=int(seed) % 2**31, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size))
    # Parallel map keeps the order (deterministic by default), so seeded runs
    # see the same batches.
    ds = ds.map(lambda i: (tf.gather(x_t, i), tf.gather(y_t, i)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
