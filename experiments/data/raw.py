"""What a loader hands over before limiting and splitting, and the uint8 pixel rule all loaders share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawData:
    """One dataset as loaded, before ``limit`` and the splits.

    Args:
        x: uint8 images of the whole dataset (or of the official train set).
        y: int64 labels matching ``x``.
        num_classes: number of classes.
        test: the official test set ``(x, y)`` when the dataset has one
            (then ``test_fraction`` is ignored), else ``None``.
        limited: ``True`` when the loader already applied ``limit``.
        origin: where the data came from, for the run's params (the
            ``mnist`` loader's ``source`` and ``sha256``); empty otherwise.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    test: tuple[np.ndarray, np.ndarray] | None = None
    limited: bool = False
    origin: dict = field(default_factory=dict)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Round and clip float pixel values (0..255) to uint8; uint8 input is returned as is.

    Images stay uint8 (0..255): normalisation is the model's job (a
    rescale-by-255 layer), so the same arrays feed every model and are four
    times smaller than float32.

    Args:
        values: pixel values of any numeric dtype.
    """
    if values.dtype == np.uint8:
        return values
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
