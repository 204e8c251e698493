"""Labels and targets as the model needs them, and the task they imply: the rule every tabular loader shares."""

from __future__ import annotations

import numpy as np

from experiments.errors import ConfigError, DataError


def required(opts, key: str, example: str):
    """``opts.<key>``, or a ConfigError naming ``dataset.<key>`` when the YAML left it null."""
    value = getattr(opts, key)
    if value is None:
        raise ConfigError(
            f"dataset {opts.name!r} needs this key",
            path=f"dataset.{key}",
            value=None,
            fix=f"set it on the command line or in your dataset YAML, e.g. dataset.{key}={example}",
        )
    return value


def labels_and_task(columns: list[np.ndarray], task: str, path: str):
    """Encode label arrays (train first, then an official test) and settle the task.

    Integer labels stay as they are (classes ``0..max``) when they already are ``0..k-1``; strings, booleans and
    other integers become classes in sorted order, named by their values. A float target is regression unless
    ``task`` says otherwise (then it must hold whole numbers).

    Args:
        columns: the label arrays; the classes are those of all of them together.
        task: ``auto``, ``classification``, ``binary`` or ``regression`` (``dataset.task``).
        path: the config key to blame (``dataset.target``, ``dataset.y_key``).

    Returns:
        ``(encoded arrays, task, num_classes, class names or None)``.
    """
    whole = np.concatenate(
        [np.asarray(c).reshape(len(c), -1)[:, 0] if np.ndim(c) > 1 else np.asarray(c) for c in columns]
    )
    is_float = whole.dtype.kind == "f"
    if is_float and not np.isfinite(whole).all():
        raise DataError(
            "the target contains NaN or infinite values",
            path=path,
            fix="drop or fill the rows with a missing target before training",
        )
    if task == "regression" or (task == "auto" and is_float and not _whole_numbers(whole)):
        if whole.dtype.kind not in "biuf":
            raise DataError(
                f"a regression target must be numbers, but it holds {whole.dtype} values",
                path=path,
                fix="set dataset.task=classification for text labels, or point the key at a numeric column",
            )
        return [np.asarray(c, dtype=np.float32).reshape(len(c)) for c in columns], "regression", 1, None
    if is_float:
        whole = whole.astype(np.int64)
    values = np.unique(whole)
    if whole.dtype.kind in "iu" and values.min() >= 0:
        k = int(values.max()) + 1
        encoded = [np.asarray(c).reshape(len(c)).astype(np.int64) for c in columns]
        names = None
    else:
        k = len(values)
        lookup = {v: i for i, v in enumerate(values.tolist())}
        encoded = [
            np.array([lookup[v] for v in np.asarray(c).reshape(len(c)).astype(whole.dtype).tolist()], dtype=np.int64)
            for c in columns
        ]
        names = tuple(str(v) for v in values.tolist())
    if k < 2:
        raise DataError(
            f"the labels hold a single class ({values.tolist()[:1]})",
            path=path,
            fix="use a label column with at least two classes, or dataset.task=regression for a number",
        )
    if task == "binary" and k != 2:
        raise DataError(
            f"dataset.task=binary needs two classes, the labels hold {k}",
            path="dataset.task",
            value=task,
            fix="set dataset.task=auto or classification",
        )
    resolved = "binary" if (task == "binary" or (task == "auto" and k == 2)) else "classification"
    return encoded, resolved, k, names


def _whole_numbers(values: np.ndarray) -> bool:
    """Float labels that are all small whole numbers (0.0, 1.0, 2.0): classes stored as floats."""
    return bool(np.all(values == np.round(values))) and len(np.unique(values)) <= 50
