"""Scoring a trained model: ``evaluate`` as prefixed metrics, batched predictions."""

from __future__ import annotations

import keras
import numpy as np


def evaluate(model: keras.Model, dataset, prefix: str) -> dict[str, float]:
    """``model.evaluate`` as ``{prefix_metric: value}`` (``test_loss``, ``test_sparse_categorical_accuracy``)."""
    values = model.evaluate(dataset, verbose=0, return_dict=True)
    return {f"{prefix}{k}": float(v) for k, v in values.items()}


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Batched forward passes in this process only.

    Not ``model.predict``: under a multi-worker strategy that runs collective
    ops, and only the chief is still there to make the plots.
    """
    return np.concatenate(
        [keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    )


def predict_classes(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    probs = predict_proba(model, x, batch_size)
    if probs.ndim == 2 and probs.shape[1] > 1:
        return np.argmax(probs, axis=1)
    return (np.ravel(probs) > 0.5).astype(int)
