"""One replica's training loss inside a fused fit, computed exactly as a solo fit logs ``loss``.

Keras already logs a loss per output of a multi-output model
(``0/r0_loss``), but it weights each batch by the output's *static* batch
size, which is unknown inside the traced train step (the last batch of an
epoch is smaller), so it averages batches unweighted. A solo fit's ``loss``
weights each batch by its size. :class:`ReplicaLoss` does what the solo
fit's loss tracker does: the batch loss (the same Keras loss object, the same
``sum_over_batch_size`` reduction) into a ``Mean`` weighted by the batch size.
"""

from __future__ import annotations

import keras
from keras import ops


class _ElementwiseLoss(keras.losses.Loss):
    """A loss *function* (``keras.losses.get("mse")``) as the ``Loss`` object ``model.compile`` makes of it.

    Like Keras' own wrapper, the ranks of labels and predictions are aligned
    first: ``(batch,)`` labels against a ``(batch, 1)`` sigmoid output are
    compared sample by sample, not broadcast to ``(batch, batch)``.
    """

    def __init__(self, fn, name: str):
        super().__init__(name=name)
        self.fn = fn

    def call(self, y_true, y_pred):
        true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
        if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
            y_pred = ops.squeeze(y_pred, axis=-1)
        return self.fn(y_true, y_pred)


def loss_object(identifier) -> keras.losses.Loss:
    """The ``Loss`` that ``model.compile(loss=identifier)`` uses for one output."""
    loss = keras.losses.get(identifier)
    if isinstance(loss, keras.losses.Loss):
        return loss
    return _ElementwiseLoss(loss, name=identifier if isinstance(identifier, str) else getattr(loss, "__name__", "loss"))


class ReplicaLoss(keras.metrics.Mean):
    """The running mean of one output's batch losses, each batch weighted by its size (a solo fit's ``loss``).

    Args:
        identifier: the compiled loss (a name such as ``sparse_categorical_crossentropy``).
        name: the metric's name; the fused model logs it as ``<output>_<name>``.
    """

    def __init__(self, identifier, name: str = "replica_loss"):
        super().__init__(name=name)
        self.loss = loss_object(identifier)

    def update_state(self, y_true, y_pred, sample_weight=None):
        value = ops.cast(self.loss(y_true, y_pred), self.dtype)
        return super().update_state(value, sample_weight=ops.shape(y_pred)[0])

    def get_config(self):
        return {"name": self.name, "identifier": keras.losses.serialize(self.loss)}
