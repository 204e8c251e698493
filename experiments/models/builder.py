"""``build_model``: the ``model`` config node -> a Keras model (sequential list or named graph).

Checks the model's top-level keys, picks the form and hands the work to
:class:`~experiments.models.graph.GraphBuilder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from omegaconf import DictConfig, ListConfig, OmegaConf

from experiments.errors import ModelGraphError
from experiments.models.blocks import remember_blocks
from experiments.models.graph import GraphBuilder
from experiments.models.specs import did_you_mean

TOP_KEYS = {"name", "description", "activation", "input", "layers", "inputs", "nodes", "outputs", "blocks"}


def build_model(model_cfg: Any, *, input_shapes: Mapping[str, tuple] | None = None, root: str = "model") -> keras.Model:
    """Build and return the Keras model described by ``model_cfg``.

    Args:
        model_cfg: the ``model`` config node (DictConfig or plain dict).
        input_shapes: shapes for inputs declared with ``shape: null`` (taken
            from the dataset by the runner), by input name (``input`` for the
            sequential form).
        root: the config path of ``model_cfg``, used in error messages.

    Raises:
        ModelGraphError: the graph is invalid; the message names the path.
    """
    spec = _to_plain(model_cfg, root)
    if not isinstance(spec, dict):
        raise ModelGraphError(
            "the model config must be a mapping",
            path=root,
            value=type(spec).__name__,
            fix="see conf/model/lambda_mlp.yaml for the format",
        )
    # Extra scalar keys are the model's own variables (``hidden_units: 128``) for
    # ${model.x} interpolation; an unknown *structured* key is most likely a typo.
    unknown = {k for k in set(spec) - TOP_KEYS if isinstance(spec[k], (dict, list))}
    if unknown:
        key = sorted(unknown)[0]
        raise ModelGraphError(
            f"unknown key{did_you_mean(key, TOP_KEYS)}",
            path=f"{root}.{key}",
            fix=f"the keys of a model are {', '.join(sorted(TOP_KEYS))}",
        )
    blocks = spec.get("blocks") or {}
    if not isinstance(blocks, dict):
        raise ModelGraphError(
            "must be a mapping of block name to block", path=f"{root}.blocks", fix="see docs/models.md"
        )
    builder = GraphBuilder(blocks, root, input_shapes or {})
    name = spec.get("name") or "model"
    if "layers" in spec:
        if "nodes" in spec or "outputs" in spec:
            raise ModelGraphError(
                "a model has either `layers` (sequential form) or `nodes`/`outputs` (graph form), not both",
                path=f"{root}.layers",
                fix="keep one of the two forms",
            )
        return remember_blocks(builder.sequential(spec, name), builder.block_of)
    if "nodes" in spec:
        return remember_blocks(builder.graph(spec, name), builder.block_of)
    raise ModelGraphError(
        "has neither `layers` (sequential form) nor `nodes` (graph form)",
        path=root,
        fix="add a `layers:` list or `inputs:`/`nodes:`/`outputs:`; see conf/model/*.yaml",
    )


def _to_plain(cfg: Any, root: str) -> Any:
    """A DictConfig/ListConfig as plain containers, interpolations resolved."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        try:
            return OmegaConf.to_container(cfg, resolve=True)
        except Exception as exc:  # an interpolation that does not resolve
            raise ModelGraphError(
                f"cannot resolve an interpolation ({exc})",
                path=root,
                fix="check the ${...} references in the model YAML",
            ) from None
    return cfg
