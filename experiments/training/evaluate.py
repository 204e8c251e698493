"""Scoring a trained model: ``evaluate`` as prefixed metrics, batched predictions."""

from __future__ import annotations

import keras
import numpy as np

from experiments.data.tfdata import resident_split
from experiments.training.resident import applies, resident_evaluate


def evaluate(model: keras.Model, dataset, prefix: str, replicas: list | None = None) -> dict[str, float]:
    """``model.evaluate`` as ``{prefix_metric: value}`` (``test_loss``, ``test_sparse_categorical_accuracy``).

    A dataset of :func:`experiments.data.make_tf_dataset` is scored on the resident path (its batches sliced inside
    the test step: :func:`experiments.training.resident.resident_evaluate`); any other through ``tf.data``.

    Args:
        model: the trained, compiled model.
        dataset: the split as a batched dataset.
        prefix: put before each metric name (``train_``, ``test_``).
        replicas: for a fused model, each replica's dataset of the split (``dataset`` is their zip).
    """
    split = resident_split(dataset) if replicas is None else [resident_split(d) for d in replicas]
    if applies(model, split):
        values = resident_evaluate(model, split)
    else:
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
