"""The ``synthetic`` option: seeded, learnable generated images of any shape and class count."""

from __future__ import annotations

import math

import numpy as np

from experiments.data.raw import RawData
from experiments.errors import DataError

# Elements (pixels) generated per chunk of synthetic data: 4 Mi float32 values
# = 16 MiB of temporaries, whatever the image shape and sample count.
_SYNTHETIC_CHUNK_ELEMENTS = 1 << 22


def _prototypes(rng: np.random.Generator, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    """One mean image per class: a coarse random 4x4 pattern around grey 128.

    Blocky patterns are what a tiny dense or conv net learns in a few steps,
    and they keep the classes apart under strong pixel noise.

    Args:
        rng: the generator.
        shape: image shape ``(h, w)`` or ``(h, w, c)``.
        num_classes: number of classes.

    Returns:
        float32 array ``(num_classes, *shape)`` of values in 80..176.
    """
    grid = 4
    coarse = rng.uniform(-1.0, 1.0, size=(num_classes, grid, grid) + tuple(shape[2:])).astype(np.float32)
    rows = np.arange(shape[0]) * grid // shape[0]
    cols = np.arange(shape[1]) * grid // shape[1]
    return 128.0 + 48.0 * coarse[:, rows][:, :, cols]


def load_synthetic(opts: dict, seed: int) -> RawData:
    """Seeded, learnable images: class prototype + Gaussian noise, as uint8.

    Labels are balanced (each class ``n / num_classes`` times), so taking
    ``min(num_samples, limit)`` samples is a stratified subsample; the loader
    applies ``limit`` itself to avoid generating images it would drop.
    Images are generated in chunks of about 4 Mi pixels of float32, so
    500k x 28 x 28 needs no float64 (or any full-size float) temporary.

    Args:
        opts: ``shape``, ``num_classes``, ``num_samples``, ``limit``.
        seed: the same seed gives the same images and labels.
    """
    shape = tuple(int(d) for d in opts.shape)
    num_classes = int(opts.num_classes)
    n = opts.num_samples if opts.limit is None else min(opts.num_samples, opts.limit)
    n = int(n)
    rng = np.random.default_rng(seed)
    prototypes = _prototypes(rng, shape, num_classes)
    y = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    try:
        x = np.empty((n,) + shape, dtype=np.uint8)
    except MemoryError as exc:
        raise DataError(
            f"{n} images of shape {list(shape)} need {n * math.prod(shape) / 2**30:.1f} GiB",
            path="dataset.num_samples",
            value=opts.num_samples,
            fix="lower dataset.num_samples, set dataset.limit, or use a smaller dataset.shape",
        ) from exc
    chunk = max(1, _SYNTHETIC_CHUNK_ELEMENTS // math.prod(shape))
    for start in range(0, n, chunk):
        labels = y[start : start + chunk]
        block = rng.standard_normal((len(labels),) + shape, dtype=np.float32)
        block *= 48.0  # noise as strong as the pattern: learnable, not trivial
        block += prototypes[labels]
        np.clip(block, 0, 255, out=block)
        np.rint(block, out=block)
        x[start : start + len(labels)] = block  # float32 -> uint8, values already 0..255
    return RawData(x=x, y=y, num_classes=num_classes, limited=True, origin={"source": "generated"})
