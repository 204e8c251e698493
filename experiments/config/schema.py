"""Validation of the composed config, and the views of it that get logged.

Types and ranges are checked right after Hydra composes a job's config, before
any data is loaded or a layer is built.  This is done here rather than by a
Hydra structured-config schema on purpose: a schema error is raised while the
*launcher* composes a job, which aborts the whole sweep, while an error raised
inside the job fails that job alone and the sweep goes on.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from experiments.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """One checked key: its expected kind, an optional range test and a hint."""

    kind: str  # "int", "float", "bool", "str", "list", "dict", "int|null", "str|null", "any"
    check: Callable[[Any], bool] | None = None
    expect: str = ""  # what a valid value looks like, for the message


def _pos(v) -> bool:
    return v > 0


RULES: dict[str, Rule] = {
    "seed": Rule("int", lambda v: v >= 0, "a non-negative integer"),
    "dry_run": Rule("bool", None, "true or false"),
    "list_layers": Rule("bool", None, "true or false"),
    "training.epochs": Rule("int", _pos, "a positive integer, e.g. training.epochs=20"),
    "training.batch_size": Rule("int", _pos, "a positive integer, e.g. training.batch_size=1024"),
    "training.loss": Rule("str", None, "a Keras loss name such as sparse_categorical_crossentropy"),
    "training.metrics": Rule("list", None, "a list of Keras metric names, e.g. [sparse_categorical_accuracy]"),
    "training.deterministic": Rule("bool", None, "true or false"),
    "training.shuffle": Rule("bool", None, "true or false"),
    "training.threads": Rule("int|null", lambda v: v is None or v > 0, "null or a positive integer"),
    "training.strategy": Rule("str", lambda v: v in ("default", "mirrored", "multi_worker"),
                              "one of default, mirrored, multi_worker"),
    "training.early_stopping.enabled": Rule("bool", None, "true or false"),
    "training.early_stopping.patience": Rule("int", lambda v: v >= 0, "a non-negative integer"),
    "training.checkpoint.enabled": Rule("bool", None, "true or false"),
    "optimizer.name": Rule("str", None, "a keras.optimizers class name such as Adam"),
    "optimizer.learning_rate": Rule("float", _pos, "a positive number, e.g. optimizer.learning_rate=0.001"),
    "optimizer.args": Rule("dict", None, "a mapping of extra optimizer arguments"),
    "tracking.experiment": Rule("str", lambda v: bool(v.strip()), "a non-empty experiment name"),
    "tracking.uri": Rule("str|null", None, "null, sqlite:///path.db, http://host:port, postgresql://..."),
    "tracking.log_model": Rule("bool", None, "true or false"),
    "tracking.log_plots": Rule("bool", None, "true or false"),
    "tracking.timeout_s": Rule("float", _pos, "a positive number of seconds"),
    "registry.modules": Rule("list", None, "a list of dotted module paths, e.g. [my_pkg.layers]"),
    "dataset.name": Rule("str", None, "the dataset option's name"),
    "dataset.limit": Rule("int|null", lambda v: v is None or v > 0, "null or a positive integer"),
    "model.activation": Rule("str|null", None, "an activation name such as abs or relu"),
}

REQUIRED_GROUPS = ("dataset", "model", "optimizer", "training", "tracking")


def _kind_ok(kind: str, v: Any) -> bool:
    if kind == "any":
        return True
    if kind.endswith("|null"):
        if v is None:
            return True
        kind = kind[:-5]
    if kind == "int":
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)
    if kind == "float":
        return isinstance(v, numbers.Real) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "str":
        return isinstance(v, str)
    if kind == "list":
        return isinstance(v, (list, ListConfig))
    if kind == "dict":
        return isinstance(v, (dict, DictConfig))
    raise ValueError(kind)


_MISSING = object()


def select(cfg: Any, path: str, default: Any = _MISSING) -> Any:
    """``cfg`` at the dotted ``path`` (resolving interpolations), or ``default``."""
    try:
        value = OmegaConf.select(cfg, path, throw_on_missing=True, default=default)
    except Exception as exc:  # an interpolation that does not resolve, a missing value
        raise ConfigError(f"cannot be resolved ({exc.__class__.__name__}: {str(exc).splitlines()[0]})", path=path,
                          fix="check the ${...} reference or give the key a value") from None
    if value is _MISSING:
        raise KeyError(path)
    return value


def validate(cfg: DictConfig) -> None:
    """Check every known key's type and range; raise the first problem found.

    Raises:
        ConfigError: naming the path, the value, what is expected and how to
            set it on the command line.
    """
    for group in REQUIRED_GROUPS:
        if select(cfg, group, None) is None:
            raise ConfigError("this config group is missing", path=group,
                              fix=f"add `- {group}: <option>` to the defaults or pass `{group}=<option>`")
    for path, rule in RULES.items():
        try:
            value = select(cfg, path)
        except KeyError:
            continue  # optional keys (a config group may not define all of them)
        if not _kind_ok(rule.kind, value) or (rule.check is not None and not rule.check(value)):
            raise ConfigError(f"expected {rule.expect}", path=path, value=_plain(value),
                              fix=f"set it with `{path}=<value>` on the command line or in the YAML")
    resume = select(cfg, "training.resume", None)
    if resume is not None and not isinstance(resume, (str, bool)):
        raise ConfigError("expected null, true, or a run id", path="training.resume", value=resume,
                          fix="use training.resume=true or training.resume=<run id>")


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=False)
    return value


def resolved_container(cfg: DictConfig) -> dict:
    """The resolved config as plain Python, without the ``hydra`` node."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("hydra", None)
    return data


# Keys that change neither what is trained nor how: excluded from the config hash.
HASH_EXCLUDE = ("dry_run", "list_layers", "tracking", "sweep", "training.resume", "training.verbose")


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
