"""Which config keys a sweep varied, and the group each run belongs to.

A group is one configuration of the swept keys (e.g. ``model.activation=abs``);
its runs differ only by ``seed``, the replicate.  The swept keys come from the
``layerlab.overrides`` tag (the overrides as typed), else from the params that
vary across runs.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from experiments.config.overrides import parse_override
from experiments.errors import LayerlabError
from experiments.tracking import tags

OVERRIDES_COLUMN = f"tags.{tags.OVERRIDES}"
SEED_KEY = "seed"
NO_GROUP_LABEL = "all runs"
# A key present in some runs' overrides but not in others (and not in params):
# the job ran with the config default, whose value we do not know.
DEFAULT_VALUE = "(default)"


def parse_overrides(value: Any) -> list[str]:
    """Turn a ``layerlab.overrides`` cell into a list of override strings.

    Args:
        value: a JSON string, an already-parsed list, or a missing value.
    """
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise LayerlabError(
            "is not a JSON list of overrides",
            path=tags.OVERRIDES,
            value=value,
            fix='log the tag as json.dumps(list_of_overrides), e.g. ["model.activation=abs", "seed=0"]',
        ) from exc
    if not isinstance(parsed, list):
        raise LayerlabError("is not a JSON list", path=tags.OVERRIDES, value=value)
    return [str(v) for v in parsed]


_PLAIN_OVERRIDE = re.compile(r"([A-Za-z_][\w.-]*)=([\w.+-]*)")  # fullmatch: seed=3, model.activation=abs, lr=1e-3


@functools.lru_cache(maxsize=65536)  # a sweep repeats its overrides across runs (model.activation=abs)
def _split_override(override: str) -> tuple[str, str]:
    """Split a Hydra override into (key, value), as Hydra's parser reads it (:mod:`experiments.config.overrides`).

    ``+key=v`` and ``++key=v`` (add / force-add) count as ``key=v``; ``~key``
    (delete) gets the value ``"(deleted)"``; text Hydra would not parse is its own key.

    Args:
        override: one override as typed.
    """
    plain = _PLAIN_OVERRIDE.fullmatch(override.strip())
    if plain:  # key=value without sweep, quoting or group syntax: what Hydra would read, without its parser
        return plain.group(1), plain.group(2)
    parsed = parse_override(override)
    if parsed is None:
        return override.strip(), ""
    if parsed.deleted:
        return parsed.key, "(deleted)"
    return parsed.key, parsed.value or ""


def _has_overrides(df: pd.DataFrame) -> bool:
    """Whether the frame carries the ``layerlab.overrides`` tag for any run.

    Args:
        df: runs frame.
    """
    return OVERRIDES_COLUMN in df.columns and df[OVERRIDES_COLUMN].notna().any()


def _key_table(df: pd.DataFrame) -> pd.DataFrame:
    """One column per candidate key, one row per run, values as strings.

    With overrides: every override key; a run that did not override a key
    takes its resolved param value, else ``"(default)"``.  Without overrides:
    every ``params.*`` column (prefix stripped).

    Args:
        df: runs frame.
    """
    if _has_overrides(df):
        rows = [dict(_split_override(o) for o in parse_overrides(cell)) for cell in df[OVERRIDES_COLUMN]]
        table = pd.DataFrame(rows, index=df.index, dtype=object)
        for key in table.columns:
            param = f"params.{key}"
            if param in df.columns:
                table[key] = table[key].where(table[key].notna(), df[param])
            table[key] = table[key].where(table[key].notna(), DEFAULT_VALUE).astype(str)
        return table
    params = [c for c in df.columns if c.startswith("params.")]
    table = df[params].copy()
    table.columns = [c[len("params.") :] for c in params]
    return table.astype(object).where(table.notna(), DEFAULT_VALUE).astype(str)


def group_columns(df: pd.DataFrame, replicate_key: str = SEED_KEY) -> list[str]:
    """The swept keys: override keys whose values differ across runs.

    The replicate key (``seed`` by default) is excluded (it is the replicate, not a treatment), and so are
    ``hydra.*`` keys (launcher settings, not the model).  Without the
    ``layerlab.overrides`` tag, falls back to the params that vary.

    Args:
        df: runs frame (usually the FINISHED runs only).
        replicate_key: the key whose values are replicates (``sweep.replicate_key``).

    Returns:
        Keys in first-seen order, e.g. ``["model.activation"]``; empty when
        all runs share one configuration.
    """
    if df.empty:
        return []
    table = _key_table(df)
    return [
        key
        for key in table.columns
        if key != replicate_key and not key.startswith("hydra.") and table[key].nunique(dropna=False) > 1
    ]


def group_labels(df: pd.DataFrame, keys: Sequence[str] | None = None) -> pd.Series:
    """Label each run by its group, e.g. ``"model.activation=abs"``.

    Args:
        df: runs frame.
        keys: group keys; default :func:`group_columns` of ``df``.

    Returns:
        A string Series aligned with ``df``; ``"all runs"`` when there are no
        group keys.
    """
    keys = group_columns(df) if keys is None else list(keys)
    if not keys:
        return pd.Series(NO_GROUP_LABEL, index=df.index, dtype=object)
    table = _key_table(df)
    return table[keys].apply(lambda row: ", ".join(f"{k}={row[k]}" for k in keys), axis=1).astype(object)


def value_sort_key(value: str) -> tuple:
    """Sort numbers numerically and before strings.

    Args:
        value: a group value as a string.
    """
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def ordered_groups(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """The distinct groups, sorted by their key values, as (label, {key: value}).

    Args:
        df: runs frame.
        keys: group keys.
    """
    if not keys:
        return [(NO_GROUP_LABEL, {})]
    table = _key_table(df)[list(keys)].drop_duplicates()
    values = [dict(row) for _, row in table.iterrows()]
    values.sort(key=lambda v: tuple(value_sort_key(v[k]) for k in keys))
    return [(", ".join(f"{k}={v[k]}" for k in keys), v) for v in values]


def grouped(
    df: pd.DataFrame, replicate_key: str = SEED_KEY
) -> tuple[list[str], pd.Series, list[tuple[str, dict[str, str]]]]:
    """Group keys, run labels and the ordered groups of a frame, in one call.

    Args:
        df: runs frame (usually the FINISHED runs).
        replicate_key: the replicate key, not a group key.

    Returns:
        ``(keys, labels, groups)``: :func:`group_columns`,
        :func:`group_labels` and :func:`ordered_groups` (empty for an empty frame).
    """
    keys = group_columns(df, replicate_key)
    labels = group_labels(df, keys)
    return keys, labels, ordered_groups(df, keys) if not df.empty else []


def key_values(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The value (as a string) of each key for each run, one column per key.

    Args:
        df: runs frame.
        keys: keys from :func:`group_columns`.
    """
    return _key_table(df)[list(keys)] if len(df) else pd.DataFrame(columns=list(keys), dtype=object)


def seeds(df: pd.DataFrame, key: str = SEED_KEY) -> pd.Series:
    """The replicate of each run: ``params.<key>``, else the ``<key>=`` override, else None.

    Args:
        df: runs frame.
        key: the replicate key (``seed`` by default).
    """
    param = f"params.{key}"
    if param in df.columns:
        return df[param].astype(object).where(df[param].notna(), None).map(lambda s: None if s is None else str(s))
    if _has_overrides(df):
        table = _key_table(df)
        if key in table.columns:
            return table[key].map(lambda s: None if s == DEFAULT_VALUE else s)
    return pd.Series([None] * len(df), index=df.index, dtype=object)
