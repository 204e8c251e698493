"""Reading the composed config: dotted lookups, the logged views, and the config hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.errors import ConfigError

_MISSING = object()


def select(cfg: Any, path: str, default: Any = _MISSING) -> Any:
    """``cfg`` at the dotted ``path`` (resolving interpolations), or ``default``."""
    try:
        value = OmegaConf.select(cfg, path, throw_on_missing=True, default=default)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve, a missing value
        raise ConfigError(
            f"cannot be resolved ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
            path=path,
            fix="check the ${...} reference or give the key a value",
        ) from None
    if value is _MISSING:
        raise KeyError(path)
    return value


def resolved_container(cfg: DictConfig) -> dict:
    """The resolved config as plain Python, without the ``hydra`` node."""
    data = cast(dict, OmegaConf.to_container(cfg, resolve=True))
    data.pop("hydra", None)
    return data


# Keys that change neither what is trained nor how: excluded from the config hash.
HASH_EXCLUDE = ("dry_run", "list_layers", "tracking", "sweep", "optuna", "training.resume", "training.verbose")


def config_hash(cfg: DictConfig) -> str:
    """A short stable hash of what determines a run's result (for skip/resume)."""
    data = resolved_container(cfg)
    for key in HASH_EXCLUDE:
        node, *rest = key.split(".")
        if not rest:
            data.pop(node, None)
        elif isinstance(data.get(node), dict):
            data[node].pop(rest[0], None)
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys for nested dicts and lists: ``{"model.layers.0.type": "Flatten"}``."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        if not data and prefix:
            out[prefix] = "{}"
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(data, list):
        if all(not isinstance(v, (dict, list)) for v in data):
            out[prefix] = json.dumps(data)
        else:
            for i, v in enumerate(data):
                out.update(flatten(v, f"{prefix}.{i}"))
    else:
        out[prefix] = data
    return out
