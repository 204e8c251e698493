"""The fused optimizer's state of one replica, as that replica's own optimizer would hold it.

A checkpoint (``last.keras``) and a logged model carry the optimizer state
(Adam's moments, the iteration count), so that ``training.resume`` goes on
exactly where the run stopped. In a fused fit one optimizer holds the state
of every replica; :class:`SlotMap` says which of its variables belong to
replica i and where they go in an optimizer of the same config built on
replica i's variables alone, so the state can be copied both ways.

Keras does not say which slot variable belongs to which model variable, but
an optimizer creates its variables in an order that depends only on the
list it is built on. So each layout is read off a *probe*: the same
optimizer config built on stand-in variables of distinct shapes ``(1,)``,
``(2,)``, ... ; a slot's shape names its model variable, its rank among that
variable's slots its kind (momentum, velocity), and the scalars (iteration
count, learning rate) keep their order. An optimizer whose slots do not have
their variable's shape (factored ones, such as Adafactor) has no map: its
replicas' checkpoints then hold a fresh optimizer state.
"""

from __future__ import annotations

from collections import Counter

import keras
import numpy as np


def _layout(optimizer_config: dict, count: int) -> list[tuple] | None:
    """For each variable of an optimizer built on ``count`` variables: (model variable index or "scalar", rank)."""
    probes = [keras.Variable(np.zeros(j + 1, dtype="float32"), name=f"probe_{j}") for j in range(count)]
    probe = keras.optimizers.deserialize(optimizer_config)
    probe.build(probes)
    seen: Counter = Counter()
    keys = []
    for var in probe.variables:
        shape = tuple(var.shape)
        if shape == ():
            ref = "scalar"
        elif len(shape) == 1 and 1 <= shape[0] <= count:
            ref = shape[0] - 1
        else:
            return None
        keys.append((ref, seen[ref]))
        seen[ref] += 1
    return keys


class SlotMap:
    """Which variables of the fused optimizer are replica i's, in the order of replica i's own optimizer.

    Args:
        fused: the fused model, compiled (its optimizer built by the first train step, or by :meth:`build`).
        replicas: the replicas' standalone models, compiled with the same optimizer config.
    """

    def __init__(self, fused: keras.Model, replicas: list[keras.Model]):
        self.fused = fused
        self.replicas = replicas
        config = keras.optimizers.serialize(fused.optimizer)
        index = {id(v): j for j, v in enumerate(fused.trainable_variables)}
        fused_keys = _layout(config, len(index))
        self.pairs: list[list[tuple[int, int]]] | None = None
        if fused_keys is None:
            return
        position = {key: p for p, key in enumerate(fused_keys)}
        self.pairs = []
        for model in replicas:
            own = [index[id(v)] for v in model.trainable_variables]
            keys = _layout(config, len(own))
            self.pairs.append(
                [(q, position[("scalar" if ref == "scalar" else own[ref], rank)]) for q, (ref, rank) in enumerate(keys)]
            )

    @property
    def available(self) -> bool:
        return self.pairs is not None

    def _ready(self, i: int) -> keras.optimizers.Optimizer:
        self.fused.optimizer.build(self.fused.trainable_variables)  # no-op once training has built it
        own = self.replicas[i].optimizer
        own.build(self.replicas[i].trainable_variables)
        return own

    def to_replica(self, i: int) -> None:
        """Replica i's optimizer now holds its share of the fused optimizer's state."""
        if self.pairs is None:
            return
        own = self._ready(i)
        fused_vars = self.fused.optimizer.variables
        for q, p in self.pairs[i]:
            own.variables[q].assign(fused_vars[p])

    def from_replica(self, i: int) -> None:
        """The fused optimizer takes replica i's share from replica i's optimizer (a resumed replica)."""
        if self.pairs is None:
            return
        own = self._ready(i)
        fused_vars = self.fused.optimizer.variables
        for q, p in self.pairs[i]:
            fused_vars[p].assign(own.variables[q])
