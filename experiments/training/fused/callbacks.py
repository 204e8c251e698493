"""Each replica's own callbacks inside one fused fit: its logs under the usual names, its own stop.

The fused model logs ``r3_sparse_categorical_accuracy``, ``val_r3_replica_loss``
and so on; :class:`ReplicaDispatch` hands replica 3's callbacks exactly the
logs a solo fit would (``loss``, ``sparse_categorical_accuracy``,
``val_loss``, ...), with ``self.model`` set to replica 3's standalone model
(whose variables the fused model shares). So the job's usual callbacks
(:func:`experiments.training.callbacks.make_callbacks`: NaN guard,
checkpoints, early stopping, metric logging) work per replica unchanged:

* a :class:`~experiments.errors.TrainingError` raised by a replica's callback
  (the NaN guard) ends that replica only: it is *masked* (nothing of it is
  read any more; its variables still compute, which costs time but cannot
  reach the other replicas, whose gradients do not depend on them) and
  keeps the error for its FAILED run;
* ``model.stop_training`` set by a replica's callback (early stopping) ends
  that replica: its ``on_train_end`` runs at once (best weights restored),
  its weights are kept and put back after the fused fit, which goes on for
  the others and stops when no replica is left;
* any other exception (Ctrl-C's ``Interrupted``) stops the whole fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras

from experiments.errors import TrainingError

# The metric name of each replica's own loss (experiments/training/fused/loss.py ReplicaLoss).
REPLICA_LOSS = "replica_loss"


@dataclass
class ReplicaState:
    """What one replica's side of the fused fit has become."""

    model: keras.Model
    callbacks: list
    history: keras.callbacks.History = field(default_factory=keras.callbacks.History)
    error: TrainingError | None = None
    stopped_epoch: int | None = None  # the epoch after which this replica's own callbacks stopped it
    frozen_weights: list | None = None  # its weights when it stopped, put back after the fused fit

    @property
    def active(self) -> bool:
        return self.error is None and self.stopped_epoch is None


def replica_logs(logs: dict | None, output: str) -> dict:
    """The fused fit's logs of output ``output`` under a solo fit's names.

    ``r0_replica_loss`` -> ``loss``, ``r0_sparse_categorical_accuracy`` ->
    ``sparse_categorical_accuracy``, ``val_r0_...`` -> ``val_...``; Keras'
    own per-output loss (``0/r0_loss``, batches unweighted) and the total are
    left out.
    """
    out = {}
    for key, value in (logs or {}).items():
        val = key.startswith("val_")
        bare = key[4:] if val else key
        if not bare.startswith(output + "_"):
            continue
        name = bare[len(output) + 1 :]
        out[("val_" if val else "") + ("loss" if name == REPLICA_LOSS else name)] = value
    return out


class ReplicaDispatch(keras.callbacks.Callback):
    """Routes the fused fit's callback hooks to every replica's own callbacks.

    Args:
        replicas: one :class:`ReplicaState` per output, in output order.
        outputs: the fused model's output names (``r0``, ``r1``, ...).
        sync: ``i ->`` gives replica i's optimizer its share of the fused optimizer's state
            (:meth:`experiments.training.fused.optimizer.SlotMap.to_replica`), before its callbacks
            see an epoch's end (a checkpoint saves that state) and when its training ends.
    """

    def __init__(self, replicas: list[ReplicaState], outputs: list[str], sync: Callable[[int], None] | None = None):
        super().__init__()
        self.replicas = replicas
        self.outputs = outputs
        self.sync = sync or (lambda i: None)
        self._epoch = 0

    def _each(self, hook: str, *args, logs=None) -> None:
        for state, output in zip(self.replicas, self.outputs):
            if not state.active:
                continue
            mine = replica_logs(logs, output) if logs is not None else None
            try:
                for cb in state.callbacks:
                    getattr(cb, hook)(*args, mine)
            except TrainingError as exc:  # this replica only (NaN loss): masked from now on
                state.error = exc

    def set_params(self, params):
        super().set_params(params)
        for state in self.replicas:
            for cb in state.callbacks:
                cb.set_params(params)

    def on_train_begin(self, logs=None):
        for state in self.replicas:
            state.model.stop_training = False
            for cb in state.callbacks:
                cb.set_model(state.model)
        self._each("on_train_begin", logs={})

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._each("on_epoch_begin", epoch, logs={})

    def on_train_batch_begin(self, batch, logs=None):
        self._each("on_train_batch_begin", batch, logs=logs or {})

    def on_train_batch_end(self, batch, logs=None):
        self._each("on_train_batch_end", batch, logs=logs or {})

    def on_test_batch_end(self, batch, logs=None):
        self._each("on_test_batch_end", batch, logs=logs or {})

    def on_epoch_end(self, epoch, logs=None):
        for i, state in enumerate(self.replicas):
            if state.active:
                self.sync(i)
        self._each("on_epoch_end", epoch, logs=logs or {})
        for state in self.replicas:
            if state.active and state.model.stop_training:
                self._finish(state, epoch)
        if not any(state.active for state in self.replicas):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        for i, state in enumerate(self.replicas):
            if state.active:
                self.sync(i)
                self._end(state)
        for state in self.replicas:
            if state.frozen_weights is not None:
                state.model.set_weights(state.frozen_weights)

    def _finish(self, state: ReplicaState, epoch: int) -> None:
        """This replica's callbacks stopped it: end its training now and keep its weights as they are."""
        state.stopped_epoch = epoch
        self._end(state)
        state.frozen_weights = state.model.get_weights()

    @staticmethod
    def _end(state: ReplicaState) -> None:
        try:
            for cb in state.callbacks:
                cb.on_train_end({})
        except TrainingError as exc:
            state.error = exc
