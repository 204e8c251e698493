"""Which ``blocks:`` use each layer of a built model came from (the model picture draws them as boxes).

Blocks are expanded into plain layers (``res1_z1``, ``res1_z2``, ...), so the
built ``keras.Model`` no longer knows them; :func:`~experiments.models.build_model`
records them here, keyed weakly by the model so that nothing outlives it and
the model itself (its config, its saved file) stays untouched.
"""

from __future__ import annotations

import weakref

_BLOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def remember_blocks(model, block_of: dict[str, tuple[str, ...]]):
    """Record ``layer name -> block uses (outermost first)`` for ``model``; returns ``model``."""
    _BLOCKS[model] = dict(block_of)
    return model


def blocks_of(model) -> dict[str, tuple[str, ...]]:
    """The block uses of each layer of ``model`` made inside one (``{}`` for a model without blocks)."""
    return dict(_BLOCKS.get(model, {}))
