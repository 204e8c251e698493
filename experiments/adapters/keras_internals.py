"""Keras internals used where Keras has no public way; checked against keras 3.15.1
(``tests/test_adapters.py`` fails when they change).

:mod:`experiments.models.summary` draws the table of ``model.summary()`` at a
fixed width.  ``model.summary(print_fn=..., line_length=...)`` renders through
a ``rich`` console whose width comes from the terminal or ``$COLUMNS`` (80
without a terminal), which clips the table; widening it would mean writing
the environment.  The rows need the model's call graph, which Keras keeps in
private attributes: the nodes by depth of a functional model, the nodes a
layer was called in, and the (layer, node, tensor) a symbolic tensor comes
from.  The public ``layer.input`` / ``layer.output`` name only a layer's
first call, not every call of a shared layer.
"""

from __future__ import annotations


def nodes_by_depth(model) -> list[list] | None:
    """The call nodes of a functional model, one list per depth (None for a model without a graph)."""
    levels = getattr(model, "_nodes_by_depth", None)
    return None if levels is None else list(levels.values())


def inbound_nodes(layer) -> list:
    """The nodes in which ``layer`` was called (every model it is part of), oldest first."""
    return list(getattr(layer, "_inbound_nodes", None) or [])


def tensor_origin(tensor) -> tuple:
    """``(operation, node index, tensor index)`` that produced a symbolic tensor."""
    return tuple(tensor._keras_history)
