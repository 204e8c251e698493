"""What a loader hands over before limiting and splitting (the loader contract), and the uint8 pixel rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# What a dataset asks of the model: several classes (softmax), two (one sigmoid unit), or a float target.
TASKS = ("classification", "binary", "regression")


@dataclass
class RawData:
    """One dataset as loaded, before ``limit`` and the splits: what every loader returns.

    Args:
        x: the samples of the whole dataset (or of the official train set), first axis = samples:
            uint8 images, float32 feature rows, or (with ``stream``) one file path per sample.
        y: int64 labels ``0..num_classes-1`` (classification, binary) or float targets (regression).
        num_classes: number of classes (1 for regression).
        test: the official test set ``(x, y)`` when the dataset has one
            (then ``test_fraction`` is ignored), else ``None``.
        limited: ``True`` when the loader already applied ``limit``.
        origin: where the data came from, for the run's params: ``source`` and ``sha256`` (of the arrays or files
            read), and anything else the loader wants logged as ``data.<key>``.
        task: ``classification``, ``binary`` or ``regression``; ``None`` infers it (float ``y``: regression;
            two classes: binary; else classification).
        class_names: the name of each class index (folder names, string labels), logged and kept with the model.
        stream: for data too large for memory, an object with ``input_shape`` and
            ``dataset(x, y, batch_size, shuffle, seed)`` that reads the samples ``x`` (paths) from disk.
        standardize: indices of feature columns standardised by the training split's mean and standard deviation
            (after the split, so validation and test never inform them).
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    test: tuple[np.ndarray, np.ndarray] | None = None
    limited: bool = False
    origin: dict = field(default_factory=dict)
    task: str | None = None
    class_names: tuple[str, ...] | None = None
    stream: Any = None
    standardize: tuple[int, ...] = ()

    def resolved_task(self) -> str:
        """The task, inferred when the loader left it ``None``."""
        if self.task is not None:
            return self.task
        if np.issubdtype(np.asarray(self.y).dtype, np.floating):
            return "regression"
        return "binary" if self.num_classes == 2 else "classification"


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
