"""Keras models from the ``model`` config group: sequential lists or named graphs.

Two forms, both plain YAML (see ``conf/model/`` and ``docs/models.md``):

* **Sequential**: ``input: {shape, dtype}`` and ``layers:``, a list of layer
  specs (``type`` = a registry name, plus that layer's arguments) or block
  uses (``block: name`` plus the block's parameters).
* **Graph**: ``inputs:`` (named inputs), ``nodes:`` (named nodes, each with
  ``inputs:`` naming one or more earlier nodes or inputs; ``share: other``
  reuses another node's layer and weights), ``outputs:`` (node names).

``blocks:`` defines reusable sub-graphs with ``params``; inside a block a
string ``$name`` stands for the value of parameter ``name``.  Every use of a
block makes new layers (own weights).

A graph's (or block's) references, cycles and unused nodes are checked
before any of its layers is made; registry names, constructor arguments and
shapes as each layer is made and called.  Every error is a :class:`~experiments.errors.ModelGraphError`
naming the config path (``model.nodes.hidden.units``), the value and the fix.

Modules: ``builder`` (:func:`build_model`, the entry point), ``graph``
(wiring nodes and blocks), ``specs`` (one layer or input spec -> a checked
layer), ``summary`` (:func:`summary_text`, :func:`count_params`), ``blocks``
(which block use each built layer came from), ``picture`` (the model's PNG),
``json_schema`` (the JSON Schema of the model files, for editors).
"""

from experiments.models.builder import build_model
from experiments.models.describe import count_params, summary_text

__all__ = ["build_model", "count_params", "summary_text"]
