"""Compare the groups of a sweep from its MLflow runs, with honest statistics.

Answers questions such as "is the abs activation better than ReLU?" from the
job runs of one sweep: per-group means with 95% confidence intervals, Welch
and (when the seeds match) paired t-tests, mean learning curves with a band,
and a markdown/CSV report that also lists the failed runs and how to rerun
them.

Run it from the shell::

    python -m experiments.compare EXPERIMENT [--sweep-id ID] [--tracking-uri URI]
        [--out DIR] [--target-accuracy 0.9] [--metric test_sparse_categorical_accuracy]

or from Python (the sweep calls this at the end of every sweep)::

    result = compare_sweep(tracking_uri, "mnist", sweep_id="2024-05-01_12-00-00")
    result["markdown"], result["csv"], result["plots"], result["table"]

Data contract (what the rest of layerlab logs, one MLflow run per job):

* tags ``layerlab.role`` (``job``; the sweep's parent run has ``parent``),
  ``layerlab.sweep_id``, ``layerlab.overrides`` (JSON list of the Hydra
  overrides as typed, e.g. ``["model.activation=abs", "seed=0"]``);
* params: the flattened resolved config (``seed``, ``model.activation``...);
* per-epoch metrics with ``step=epoch`` (0-based): ``loss``,
  ``sparse_categorical_accuracy``, ``val_loss``,
  ``val_sparse_categorical_accuracy``, ``epoch_time_s``; final values
  ``test_loss`` and ``test_sparse_categorical_accuracy``;
* status ``FINISHED`` or ``FAILED``.  Only FINISHED runs enter the statistics;
  the others are listed in the report.

The DataFrame that :func:`load_runs` returns (and that every other function
takes) is the frame of :func:`mlflow.search_runs` (columns ``run_id``,
``status``, ``params.<key>``, ``metrics.<key>``, ``tags.<key>``...) plus a
``history`` column: a dict ``{metric name: [value at epoch 0, epoch 1, ...]}``
(NaN where an epoch was not logged).  Hand-built frames with the same column
names work too, which is how the pure functions are tested.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from experiments.errors import LayerlabError

__all__ = [
    "FINAL_METRICS",
    "HISTORY_METRICS",
    "compare_sweep",
    "group_columns",
    "group_labels",
    "load_runs",
    "main",
    "mean_ci",
    "pairwise_tests",
    "plot_curves",
    "render_table",
    "summarize",
    "write_report",
]

#: Short column prefix in the summary -> MLflow metric name (final value).
FINAL_METRICS: dict[str, str] = {
    "val_acc": "val_sparse_categorical_accuracy",
    "val_loss": "val_loss",
    "test_acc": "test_sparse_categorical_accuracy",
    "test_loss": "test_loss",
}

#: Metrics whose per-epoch history :func:`load_runs` fetches.
HISTORY_METRICS: tuple[str, ...] = (
    "val_sparse_categorical_accuracy",
    "val_loss",
    "loss",
    "sparse_categorical_accuracy",
    "epoch_time_s",
)

VAL_ACC = "val_sparse_categorical_accuracy"
DEFAULT_METRIC = "test_sparse_categorical_accuracy"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SEED_KEY = "seed"
OVERRIDES_TAG = "tags.layerlab.overrides"
NO_GROUP_LABEL = "all runs"
# A key present in some runs' overrides but not in others (and not in params):
# the job ran with the config default, whose value we do not know.
DEFAULT_VALUE = "(default)"
CONFIDENCE = 0.95


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _resolve_tracking_uri(tracking_uri: str | None) -> str:
    """Pick the tracking URI: the argument, else ``MLFLOW_TRACKING_URI``, else mlflow's current one.

    Args:
        tracking_uri: an explicit URI, or ``None``.
    """
    if tracking_uri:
        return tracking_uri
    import mlflow

    # mlflow.get_tracking_uri() already honours MLFLOW_TRACKING_URI and any
    # set_tracking_uri() done by the sweep that calls us.
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def _check_sqlite_exists(uri: str) -> None:
    """Refuse a ``sqlite:///`` URI whose file does not exist.

    MLflow would silently create an empty database there, and the user would
    then read "experiment not found" instead of "wrong path".

    Args:
        uri: the tracking URI.
    """
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        db = Path(uri[len(prefix):])
        if str(db) != ":memory:" and not db.exists():
            raise LayerlabError(
                f"the tracking database {str(db)!r} does not exist",
                path="tracking_uri",
                value=uri,
                fix="pass --tracking-uri with the database the sweep logged to "
                "(e.g. sqlite:///path/to/mlflow.db) or set MLFLOW_TRACKING_URI",
            )


def _quote_filter_value(value: str, what: str) -> str:
    """Quote a value for an MLflow filter string.

    Args:
        value: the raw value.
        what: the option name, for the error message.
    """
    if "'" in value:
        # MLflow's filter grammar has no escape for quotes inside a literal.
        raise LayerlabError(
            "contains a single quote, which MLflow search filters cannot express",
            path=what,
            value=value,
            fix="rename the sweep without quotes",
        )
    return f"'{value}'"


def _history_lists(client: Any, run_id: str, metrics: Iterable[str]) -> dict[str, list[float]]:
    """Fetch per-epoch histories of one run as lists indexed by epoch.

    Args:
        client: an ``MlflowClient``.
        run_id: the run.
        metrics: metric names to fetch.

    Returns:
        ``{metric: [value at step 0, step 1, ...]}``; NaN where a step is
        missing; metrics never logged are left out.
    """
    history: dict[str, list[float]] = {}
    for key in metrics:
        points = client.get_metric_history(run_id, key)
        if not points:
            continue
        by_step: dict[int, tuple[int, float]] = {}
        for p in points:
            # A step logged twice (a retried epoch): keep the latest value.
            prev = by_step.get(p.step)
            if prev is None or p.timestamp >= prev[0]:
                by_step[int(p.step)] = (p.timestamp, float(p.value))
        length = max(by_step) + 1
        values = [math.nan] * length
        for step, (_, value) in by_step.items():
            if step >= 0:
                values[step] = value
        history[key] = values
    return history


def load_runs(tracking_uri: str | None, experiment: str, sweep_id: str | None = None) -> pd.DataFrame:
    """Load the job runs of an experiment (optionally of one sweep) from MLflow.

    Args:
        tracking_uri: MLflow tracking URI; ``None`` uses ``MLFLOW_TRACKING_URI``
            or mlflow's current URI.
        experiment: experiment name.
        sweep_id: keep only runs tagged ``layerlab.sweep_id`` = this value.

    Returns:
        The :func:`mlflow.search_runs` frame (only runs tagged
        ``layerlab.role=job``, all statuses) plus a ``history`` column:
        ``{metric: [value per epoch]}`` for :data:`HISTORY_METRICS`.

    Raises:
        LayerlabError: the store, the experiment or any matching run is missing.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = _resolve_tracking_uri(tracking_uri)
    _check_sqlite_exists(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        exp = client.get_experiment_by_name(experiment)
    except Exception as exc:  # the store itself is unusable (bad URI, server down)
        raise LayerlabError(
            f"cannot read the MLflow tracking store: {exc}",
            path="tracking_uri",
            value=uri,
            fix="check the tracking URI and that the store (file or server) is reachable",
        ) from exc
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise LayerlabError(
            f"experiment {experiment!r} not found in {uri}",
            path="experiment",
            fix=f"use one of: {', '.join(names) if names else '(no experiments in this store)'}",
        )

    filters = [f"tags.`layerlab.role` = {_quote_filter_value('job', 'role')}"]
    if sweep_id is not None:
        filters.append(f"tags.`layerlab.sweep_id` = {_quote_filter_value(str(sweep_id), 'sweep_id')}")

    # mlflow.search_runs has no tracking_uri argument: set it for the call and
    # restore it, so that the sweep calling us keeps logging where it was.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        df = mlflow.search_runs(
            experiment_ids=[exp.experiment_id],
            filter_string=" and ".join(filters),
            output_format="pandas",
        )
    finally:
        mlflow.set_tracking_uri(previous)

    if df.empty:
        where = f"sweep {sweep_id!r} in experiment {experiment!r}" if sweep_id else f"experiment {experiment!r}"
        raise LayerlabError(
            f"no runs found for {where} (looked for runs tagged layerlab.role=job)",
            path="sweep" if sweep_id else "experiment",
            fix="check the sweep id (tag layerlab.sweep_id of the sweep's runs) and the experiment name",
        )

    df = df.reset_index(drop=True)
    df["history"] = [_history_lists(client, rid, HISTORY_METRICS) for rid in df["run_id"]]
    return df


# --------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------


def _parse_overrides(value: Any) -> list[str]:
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
            path="layerlab.overrides",
            value=value,
            fix='log the tag as json.dumps(list_of_overrides), e.g. ["model.activation=abs", "seed=0"]',
        ) from exc
    if not isinstance(parsed, list):
        raise LayerlabError("is not a JSON list", path="layerlab.overrides", value=value)
    return [str(v) for v in parsed]


def _split_override(override: str) -> tuple[str, str]:
    """Split a Hydra override into (key, value).

    ``+key=v`` and ``++key=v`` (add / force-add) count as ``key=v``; ``~key``
    (delete) gets the value ``"(deleted)"``.

    Args:
        override: one override as typed.
    """
    text = override.strip()
    deleted = text.startswith("~")
    text = text.lstrip("~+")
    key, sep, value = text.partition("=")
    if deleted:
        return key.strip(), "(deleted)"
    return key.strip(), value.strip() if sep else ""


def _has_overrides(df: pd.DataFrame) -> bool:
    """Whether the frame carries the ``layerlab.overrides`` tag for any run.

    Args:
        df: runs frame.
    """
    return OVERRIDES_TAG in df.columns and df[OVERRIDES_TAG].notna().any()


def _key_table(df: pd.DataFrame) -> pd.DataFrame:
    """One column per candidate key, one row per run, values as strings.

    With overrides: every override key; a run that did not override a key
    takes its resolved param value, else ``"(default)"``.  Without overrides:
    every ``params.*`` column (prefix stripped).

    Args:
        df: runs frame.
    """
    if _has_overrides(df):
        rows = []
        for cell in df[OVERRIDES_TAG]:
            rows.append(dict(_split_override(o) for o in _parse_overrides(cell)))
        table = pd.DataFrame(rows, index=df.index, dtype=object)
        for key in table.columns:
            param = f"params.{key}"
            if param in df.columns:
                table[key] = table[key].where(table[key].notna(), df[param])
            table[key] = table[key].where(table[key].notna(), DEFAULT_VALUE).astype(str)
        return table
    params = [c for c in df.columns if c.startswith("params.")]
    table = df[params].copy()
    table.columns = [c[len("params."):] for c in params]
    return table.astype(object).where(table.notna(), DEFAULT_VALUE).astype(str)


def group_columns(df: pd.DataFrame) -> list[str]:
    """The swept keys: override keys whose values differ across runs.

    ``seed`` is excluded (it is the replicate, not a treatment), and so are
    ``hydra.*`` keys (launcher settings, not the model).  Without the
    ``layerlab.overrides`` tag, falls back to the params that vary.

    Args:
        df: runs frame (usually the FINISHED runs only).

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
        if key != SEED_KEY and not key.startswith("hydra.") and table[key].nunique(dropna=False) > 1
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


def _value_sort_key(value: str) -> tuple:
    """Sort numbers numerically and before strings.

    Args:
        value: a group value as a string.
    """
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _ordered_groups(df: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """The distinct groups, sorted by their key values, as (label, {key: value}).

    Args:
        df: runs frame.
        keys: group keys.
    """
    if not keys:
        return [(NO_GROUP_LABEL, {})]
    table = _key_table(df)[list(keys)].drop_duplicates()
    values = [dict(row) for _, row in table.iterrows()]
    values.sort(key=lambda v: tuple(_value_sort_key(v[k]) for k in keys))
    return [(", ".join(f"{k}={v[k]}" for k in keys), v) for v in values]


def _seeds(df: pd.DataFrame) -> pd.Series:
    """The seed of each run: ``params.seed``, else the ``seed=`` override, else NaN.

    Args:
        df: runs frame.
    """
    if "params.seed" in df.columns:
        return df["params.seed"].astype(object).where(df["params.seed"].notna(), None).map(
            lambda s: None if s is None else str(s)
        )
    if _has_overrides(df):
        table = _key_table(df)
        if SEED_KEY in table.columns:
            return table[SEED_KEY].map(lambda s: None if s == DEFAULT_VALUE else s)
    return pd.Series([None] * len(df), index=df.index, dtype=object)


def _finished(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the FINISHED runs (all runs when there is no ``status`` column).

    Args:
        df: runs frame.
    """
    if "status" not in df.columns:
        return df
    return df[df["status"] == "FINISHED"]


def _not_finished(df: pd.DataFrame) -> pd.DataFrame:
    """The runs excluded from statistics (FAILED, KILLED, still RUNNING).

    Args:
        df: runs frame.
    """
    if "status" not in df.columns:
        return df.iloc[0:0]
    return df[df["status"] != "FINISHED"]


# --------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """Mean, sample std (ddof=1) and t-based CI half width of the mean.

    Args:
        values: numbers; NaN values are ignored (and not counted in n).
        confidence: two-sided confidence level.

    Returns:
        ``(mean, std, half_width, n)``; std and half width are NaN for n < 2,
        everything is NaN for n = 0.
    """
    arr = np.asarray(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    std = float(arr.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))
    return mean, std, half, n


def _metric_values(df: pd.DataFrame, metric: str) -> pd.Series:
    """Final values of a metric per run, NaN where missing.

    Uses ``metrics.<metric>`` (MLflow's latest value = value at the last
    step); falls back to the last non-NaN history value.

    Args:
        df: runs frame.
        metric: MLflow metric name.
    """
    col = f"metrics.{metric}"
    values = pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(np.nan, index=df.index)
    if "history" in df.columns:
        for idx in values.index[values.isna()]:
            hist = _history(df.at[idx, "history"], metric)
            finite = hist[~np.isnan(hist)]
            if finite.size:
                values.at[idx] = finite[-1]
    return values.astype(float)


def _history(cell: Any, metric: str) -> np.ndarray:
    """The per-epoch values of one metric from a ``history`` cell.

    Args:
        cell: ``{metric: [values by epoch]}`` (or a missing value).
        metric: MLflow metric name.
    """
    if not isinstance(cell, dict) or metric not in cell:
        return np.array([], dtype=float)
    return np.asarray(cell[metric], dtype=float)


def _epochs_to_target(cell: Any, target: float) -> float | None:
    """Epochs trained until val accuracy first reached ``target`` (1-based).

    Args:
        cell: a ``history`` cell.
        target: the accuracy to reach.

    Returns:
        e.g. 1.0 when reached after the first epoch (step 0); ``math.inf``
        when the run never reached it; ``None`` when it has no history.
    """
    hist = _history(cell, VAL_ACC)
    if hist.size == 0 or np.isnan(hist).all():
        return None
    hits = np.flatnonzero(hist >= target)
    return float(hits[0] + 1) if hits.size else math.inf


def _mean_epoch_time(row: pd.Series) -> float:
    """Mean seconds per epoch of one run (history, else the final metric).

    Args:
        row: one run.
    """
    hist = _history(row.get("history"), "epoch_time_s")
    hist = hist[~np.isnan(hist)]
    if hist.size:
        return float(hist.mean())
    value = row.get("metrics.epoch_time_s", math.nan)
    return float(value) if value is not None else math.nan


def summarize(df: pd.DataFrame, target_accuracy: float = 0.9) -> pd.DataFrame:
    """One row per group with means, stds and 95% CIs of the final metrics.

    Only FINISHED runs are used.

    Args:
        df: runs frame (see the module docstring).
        target_accuracy: val accuracy for the "epochs to target" columns.

    Returns:
        Columns: ``group`` (label), one column per group key, ``n`` (finished
        runs), then for each of ``val_acc``, ``val_loss``, ``test_acc``,
        ``test_loss``: ``<m>_mean``, ``<m>_std`` (ddof=1), ``<m>_ci95`` (half
        width of the t-based 95% CI of the mean; NaN for n < 2); then
        ``target_accuracy``, ``epochs_to_target_mean`` (mean over the runs
        that reached it, 1-based epochs), ``n_reached_target``,
        ``n_missed_target`` (runs whose history never reached it; runs without
        any val-accuracy history are in neither count), and
        ``epoch_time_s_mean`` (mean over runs of each run's mean epoch time).

    Raises:
        LayerlabError: no FINISHED run.
    """
    fin = _finished(df)
    if fin.empty:
        raise LayerlabError(
            f"no FINISHED runs to summarize ({len(df)} runs, none finished)",
            fix="rerun the failed jobs (see the failed-runs list) and compare again",
        )
    keys = group_columns(fin)
    labels = group_labels(fin, keys)
    rows = []
    for label, values in _ordered_groups(fin, keys):
        sub = fin[labels == label]
        row: dict[str, Any] = {"group": label, **values, "n": len(sub)}
        for alias, metric in FINAL_METRICS.items():
            mean, std, half, _ = mean_ci(_metric_values(sub, metric))
            row[f"{alias}_mean"], row[f"{alias}_std"], row[f"{alias}_ci95"] = mean, std, half
        epochs = [_epochs_to_target(cell, target_accuracy) for cell in sub.get("history", [None] * len(sub))]
        reached = [e for e in epochs if e is not None and math.isfinite(e)]
        row["target_accuracy"] = target_accuracy
        row["epochs_to_target_mean"] = float(np.mean(reached)) if reached else math.nan
        row["n_reached_target"] = len(reached)
        row["n_missed_target"] = sum(1 for e in epochs if e == math.inf)
        times = [_mean_epoch_time(r) for _, r in sub.iterrows()]
        row["epoch_time_s_mean"] = mean_ci(times)[0]
        rows.append(row)
    return pd.DataFrame(rows)


def _lower_is_better(metric: str) -> bool:
    """Direction of a metric: losses, errors and times are better when lower.

    Args:
        metric: metric name.
    """
    name = metric.lower()
    return any(word in name for word in ("loss", "error", "time", "mse", "mae"))


def pretty_metric(metric: str) -> str:
    """A readable metric name: ``test_sparse_categorical_accuracy`` -> ``test accuracy``.

    Args:
        metric: MLflow metric name.
    """
    name = metric.replace("sparse_categorical_accuracy", "accuracy").replace("categorical_accuracy", "accuracy")
    if name.startswith("val_"):
        name = "val " + name[4:]
    elif name == "accuracy":
        name = "train accuracy"
    elif name == "loss":
        name = "train loss"
    return name.replace("_", " ")


def _fmt(x: float, digits: int = 4) -> str:
    """Format a float with fixed decimals, ``nan`` as ``n/a``.

    Args:
        x: the number.
        digits: decimals.
    """
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    """Format a p-value with 2 significant digits (``n/a`` when missing).

    Args:
        p: the p-value.
    """
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN inputs stay NaN, are not counted).

    Args:
        pvalues: raw p-values, one per comparison.
    """
    valid = [(p, i) for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(valid)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _pair_by_seed(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Align two groups by seed when both have exactly the same seeds.

    Args:
        a: runs of group A.
        b: runs of group B.
        metric: metric name.

    Returns:
        ``(values_a, values_b)`` in the same seed order, or ``None`` when the
        seed sets differ, a seed is missing or repeated, or a value is NaN.
    """
    sa, sb = _seeds(a), _seeds(b)
    if sa.isna().any() or sb.isna().any() or sa.duplicated().any() or sb.duplicated().any():
        return None
    if set(sa) != set(sb):
        return None
    va = pd.Series(_metric_values(a, metric).to_numpy(), index=sa.to_numpy())
    vb = pd.Series(_metric_values(b, metric).to_numpy(), index=sb.to_numpy())
    order = sorted(va.index, key=_value_sort_key)
    va, vb = va[order], vb[order]
    if va.isna().any() or vb.isna().any():
        return None
    return va.to_numpy(), vb.to_numpy()


def pairwise_tests(
    df: pd.DataFrame, metric: str = DEFAULT_METRIC, alpha: float = 0.05
) -> pd.DataFrame:
    """Compare every pair of groups on one final metric with t-tests.

    The decision uses the paired t-test (``scipy.stats.ttest_rel``) when both
    groups ran exactly the same seeds (the seed fixes init and data order, so
    pairing removes that noise), else Welch's t-test
    (``scipy.stats.ttest_ind(equal_var=False)``).  Both p-values are reported.
    With more than one pair, the decision p-value is Holm-adjusted over all
    pairs so that running many comparisons does not manufacture a "winner".

    Args:
        df: runs frame; only FINISHED runs are used.
        metric: MLflow metric name; higher is better unless the name contains
            loss/error/time.
        alpha: significance level.

    Returns:
        One row per pair, columns: ``metric``, ``group_a``, ``group_b``,
        ``n_a``, ``n_b``, ``mean_a``, ``mean_b``, ``diff`` (mean_a - mean_b),
        ``diff_ci_low``, ``diff_ci_high`` (95% CI of the difference, from the
        deciding test), ``welch_p``, ``paired_p`` (NaN when not paired),
        ``n_pairs``, ``test`` (``paired``/``welch``/``none``), ``p_holm``,
        ``significant`` (bool), ``better`` (label of the better group when
        significant, else ``""``), ``verdict`` (a sentence).
    """
    fin = _finished(df)
    keys = group_columns(fin)
    labels = group_labels(fin, keys)
    groups = [label for label, _ in _ordered_groups(fin, keys)] if not fin.empty else []
    lower = _lower_is_better(metric)
    name = pretty_metric(metric)
    rows = []
    for ga, gb in combinations(groups, 2):
        a, b = fin[labels == ga], fin[labels == gb]
        va, vb = _metric_values(a, metric).dropna().to_numpy(), _metric_values(b, metric).dropna().to_numpy()
        row: dict[str, Any] = {
            "metric": metric, "group_a": ga, "group_b": gb, "n_a": len(va), "n_b": len(vb),
            "mean_a": float(va.mean()) if len(va) else math.nan,
            "mean_b": float(vb.mean()) if len(vb) else math.nan,
            "diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
            "welch_p": math.nan, "paired_p": math.nan, "n_pairs": 0, "test": "none",
        }
        row["diff"] = row["mean_a"] - row["mean_b"]
        if len(va) >= 2 and len(vb) >= 2:
            row["welch_p"] = float(stats.ttest_ind(va, vb, equal_var=False).pvalue)
            row["test"] = "welch"
            # Welch-Satterthwaite CI of the difference of means.
            ra, rb = va.var(ddof=1) / len(va), vb.var(ddof=1) / len(vb)
            se = math.sqrt(ra + rb)
            if se > 0:
                dof = (ra + rb) ** 2 / (ra**2 / (len(va) - 1) + rb**2 / (len(vb) - 1))
                half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * se)
                row["diff_ci_low"], row["diff_ci_high"] = row["diff"] - half, row["diff"] + half
            paired = _pair_by_seed(a, b, metric)
            if paired is not None and len(paired[0]) >= 2:
                pa, pb = paired
                row["n_pairs"] = len(pa)
                row["paired_p"] = float(stats.ttest_rel(pa, pb).pvalue)
                mean_d, _, half_d, _ = mean_ci(pa - pb)
                if math.isfinite(row["paired_p"]):
                    row["test"] = "paired"
                    row["diff_ci_low"], row["diff_ci_high"] = mean_d - half_d, mean_d + half_d
        rows.append(row)

    # p-value the decision rests on (NaN when no test was possible/defined).
    decision = [r["paired_p"] if r["test"] == "paired" else r["welch_p"] for r in rows]
    holm = _holm(decision)
    for row, p, p_adj in zip(rows, decision, holm):
        row["p_holm"] = p_adj
        row["significant"] = bool(math.isfinite(p_adj) and p_adj < alpha)
        a_better = row["diff"] < 0 if lower else row["diff"] > 0
        row["better"] = (row["group_a"] if a_better else row["group_b"]) if row["significant"] else ""
        row["verdict"] = _verdict(row, name, lower, alpha, n_tests=sum(math.isfinite(x) for x in decision))
    columns = [
        "metric", "group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b", "diff", "diff_ci_low",
        "diff_ci_high", "welch_p", "paired_p", "n_pairs", "test", "p_holm", "significant", "better", "verdict",
    ]
    return pd.DataFrame(rows, columns=columns)


def _verdict(row: dict[str, Any], name: str, lower: bool, alpha: float, n_tests: int) -> str:
    """One sentence that states the result of a pairwise comparison.

    Args:
        row: a row of :func:`pairwise_tests` (before the verdict).
        name: readable metric name.
        lower: lower is better for this metric.
        alpha: significance level.
        n_tests: number of comparisons the Holm correction covers.
    """
    ga, gb = row["group_a"], row["group_b"]
    if row["n_a"] < 2 or row["n_b"] < 2:
        small = ", ".join(f"n={n} in {g}" for g, n in ((ga, row["n_a"]), (gb, row["n_b"])) if n < 2)
        return (
            f"{ga} vs {gb} on {name}: test not possible ({small}; "
            f"need at least 2 finished runs per group)."
        )
    if row["test"] == "none" or not math.isfinite(row["welch_p"] if row["test"] == "welch" else row["paired_p"]):
        return (
            f"{ga} vs {gb} on {name}: test not possible (no variance in either group; "
            f"means {_fmt(row['mean_a'])} and {_fmt(row['mean_b'])})."
        )
    ps = [f"Welch p={_fmt_p(row['welch_p'])}"]
    if row["test"] == "paired":
        ps = [f"paired p={_fmt_p(row['paired_p'])} over {row['n_pairs']} seeds"] + ps
    if n_tests > 1:
        ps.append(f"Holm-adjusted p={_fmt_p(row['p_holm'])} over {n_tests} comparisons")
    ptext = ", ".join(ps)
    if row["significant"]:
        a_better = row["diff"] < 0 if lower else row["diff"] > 0
        better, worse = (ga, gb) if a_better else (gb, ga)
        # Express the gap and its CI as "better minus worse" in the good direction.
        sign = 1 if a_better != lower else -1
        lo, hi = sorted((sign * row["diff_ci_low"], sign * row["diff_ci_high"]))
        direction = "lower" if lower else "higher"
        return (
            f"{better} is better than {worse} on {name} by {_fmt(abs(row['diff']))} ({direction}; "
            f"95% CI {_fmt(lo)} to {_fmt(hi)}), significant at alpha={alpha:g} ({ptext})."
        )
    return (
        f"No significant difference between {ga} and {gb} on {name} at alpha={alpha:g}: "
        f"difference of means {row['diff']:+.4f} ({ga} minus {gb}; 95% CI {_fmt(row['diff_ci_low'])} "
        f"to {_fmt(row['diff_ci_high'])}), {ptext}."
    )


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def _curve_matrix(sub: pd.DataFrame, metric: str) -> np.ndarray:
    """Runs x epochs matrix of one metric, NaN-padded to the longest run.

    Args:
        sub: runs of one group.
        metric: metric name.
    """
    series = [_history(cell, metric) for cell in sub.get("history", [])]
    series = [s for s in series if s.size]
    if not series:
        return np.empty((0, 0))
    width = max(s.size for s in series)
    out = np.full((len(series), width), np.nan)
    for i, s in enumerate(series):
        out[i, : s.size] = s
    return out


def plot_curves(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Plot mean learning curves per group with a 95% CI band.

    One PNG per metric: ``curves_val_accuracy.png`` and ``curves_val_loss.png``.
    The line is the mean over the group's FINISHED runs at each epoch; the
    band is the t-based 95% CI of that mean (drawn where >= 2 runs reached the
    epoch: with early stopping, later epochs average fewer runs).  Epochs are
    1-based (1 = after the first epoch), as in ``epochs_to_target_mean``.

    Args:
        df: runs frame with a ``history`` column.
        out_dir: folder to write into (created).

    Returns:
        The written paths; a metric without any history is skipped.
    """
    # Figure + Agg canvas directly: no pyplot, so no global backend switch and
    # no interference with a caller that uses another backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fin = _finished(df)
    keys = group_columns(fin)
    labels = group_labels(fin, keys)
    groups = [label for label, _ in _ordered_groups(fin, keys)] if not fin.empty else []
    written = []
    for metric, filename in ((VAL_ACC, "curves_val_accuracy.png"), ("val_loss", "curves_val_loss.png")):
        fig = Figure(figsize=(7, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        drawn = False
        for label in groups:
            mat = _curve_matrix(fin[labels == label], metric)
            if mat.size == 0:
                continue
            n = np.sum(~np.isnan(mat), axis=0)
            mean, std = _nanmean_cols(mat), _nanstd_cols(mat)
            with np.errstate(invalid="ignore", divide="ignore"):
                tcrit = np.where(n >= 2, stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1)), np.nan)
                half = tcrit * std / np.sqrt(n)
            epochs = np.arange(1, mat.shape[1] + 1)
            (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{label} (n={mat.shape[0]})")
            ok = np.isfinite(half)
            if ok.any():
                ax.fill_between(epochs, mean - half, mean + half, where=ok, alpha=0.2, color=line.get_color())
            drawn = True
        if not drawn:
            continue
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel(pretty_metric(metric))
        ax.set_title(f"{pretty_metric(metric)}: mean over seeds, band = 95% CI of the mean (t)")
        ax.grid(alpha=0.3)
        ax.legend(title="line = mean, band = 95% CI", fontsize="small")
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def _nanmean_cols(mat: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN (NaN for an all-NaN column), without warnings.

    Args:
        mat: runs x epochs.
    """
    n = np.sum(~np.isnan(mat), axis=0)
    total = np.nansum(mat, axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _nanstd_cols(mat: np.ndarray) -> np.ndarray:
    """Column sample std (ddof=1) ignoring NaN; NaN where fewer than 2 values.

    Args:
        mat: runs x epochs.
    """
    n = np.sum(~np.isnan(mat), axis=0)
    mean = _nanmean_cols(mat)
    sq = np.nansum((mat - mean) ** 2, axis=0)
    return np.where(n >= 2, np.sqrt(sq / np.maximum(n - 1, 1)), np.nan)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def _cell(x: Any) -> str:
    """Make a value safe for a markdown table cell.

    Args:
        x: any value.
    """
    return str(x).replace("|", "\\|").replace("\n", " ")


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency).

    Args:
        header: column titles.
        rows: cell values.
    """
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mean_pm(row: pd.Series, alias: str, with_std: bool = False) -> str:
    """``mean ± ci95`` (and ``sd std``) for one summary cell.

    Args:
        row: a summary row.
        alias: metric prefix (``test_acc``...).
        with_std: also show the std.
    """
    mean, half, std = row[f"{alias}_mean"], row[f"{alias}_ci95"], row[f"{alias}_std"]
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean:.4f} ± {half:.4f}" if math.isfinite(half) else f"{mean:.4f} (n<2, no CI)"
    if with_std and math.isfinite(std):
        text += f" (sd {std:.4f})"
    return text


def _epochs_cell(row: pd.Series) -> str:
    """``mean (reached/total)`` for the epochs-to-target column.

    Args:
        row: a summary row.
    """
    total = int(row["n_reached_target"] + row["n_missed_target"])
    mean = row["epochs_to_target_mean"]
    head = f"{mean:.1f}" if math.isfinite(mean) else "never"
    return f"{head} ({int(row['n_reached_target'])}/{total} reached)"


def render_table(summary: pd.DataFrame) -> str:
    """The summary as a fixed-width text table for the terminal.

    Args:
        summary: output of :func:`summarize`.
    """
    target = summary["target_accuracy"].iloc[0] if len(summary) else math.nan
    header = ["group", "n", "test acc", "test loss", "val acc", f"epochs to {target:g}", "s/epoch"]
    rows = [
        [
            str(r["group"]), str(int(r["n"])), _mean_pm(r, "test_acc"), _mean_pm(r, "test_loss"),
            _mean_pm(r, "val_acc"), _epochs_cell(r), _fmt(r["epoch_time_s_mean"], 2),
        ]
        for _, r in summary.iterrows()
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.append("± = half width of the 95% CI of the mean (t distribution); FINISHED runs only.")
    return "\n".join(lines)


def rerun_command(overrides: Any) -> str:
    """The command that reruns one job: ``python runner.py <overrides>``.

    Args:
        overrides: the ``layerlab.overrides`` cell (JSON list or list).
    """
    parts = _parse_overrides(overrides)
    # shlex.quote leaves plain overrides untouched and quotes [..], spaces, etc.
    return " ".join(["python", "runner.py", *(shlex.quote(p) for p in parts)])


def write_report(
    summary: pd.DataFrame,
    tests: pd.DataFrame,
    failed: pd.DataFrame | None,
    out_dir: str | Path,
    *,
    plots: Sequence[str | Path] = (),
    title: str = "Sweep comparison",
) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison_tests.csv``.

    Args:
        summary: output of :func:`summarize` (saved as ``comparison.csv``).
        tests: output of :func:`pairwise_tests` (saved as ``comparison_tests.csv``).
        failed: the runs that did not finish (rows of :func:`load_runs`), or
            ``None``; listed with the command to rerun each.
        out_dir: folder to write into (created).
        plots: image paths to link from the markdown.
        title: the markdown heading.

    Returns:
        ``{"markdown": ..., "csv": ..., "tests_csv": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "comparison.md", "csv": out / "comparison.csv", "tests_csv": out / "comparison_tests.csv"}
    summary.to_csv(paths["csv"], index=False)
    tests.to_csv(paths["tests_csv"], index=False)

    target = summary["target_accuracy"].iloc[0] if len(summary) else math.nan
    md = [f"# {title}", ""]
    md += [
        "## Summary",
        "",
        "Mean ± half width of the 95% confidence interval of the mean (t distribution), "
        "sd = sample standard deviation (ddof=1). Only FINISHED runs are included.",
        "",
        _markdown_table(
            ["group", "n", "val accuracy", "val loss", "test accuracy", "test loss",
             f"epochs to val acc {target:g}", "s/epoch"],
            [
                [r["group"], int(r["n"]), _mean_pm(r, "val_acc", True), _mean_pm(r, "val_loss", True),
                 _mean_pm(r, "test_acc", True), _mean_pm(r, "test_loss", True), _epochs_cell(r),
                 _fmt(r["epoch_time_s_mean"], 2)]
                for _, r in summary.iterrows()
            ],
        ),
        "",
        "Epochs to target: mean over the runs that reached it; runs that never did are counted "
        "in the denominator, not dropped.",
        "",
        "## Pairwise tests",
        "",
    ]
    if tests.empty:
        md += ["Only one group: nothing to compare.", ""]
    else:
        md += [
            "Welch's t-test (unequal variances) for every pair; a paired t-test by seed when both groups "
            "ran the same seeds, which then decides. With several pairs, the deciding p-value is "
            "Holm-adjusted.",
            "",
            _markdown_table(
                ["A", "B", "metric", "mean A", "mean B", "A − B (95% CI)", "Welch p", "paired p", "Holm p",
                 "significant"],
                [
                    [r["group_a"], r["group_b"], pretty_metric(r["metric"]), _fmt(r["mean_a"]), _fmt(r["mean_b"]),
                     f"{_fmt(r['diff'])} ({_fmt(r['diff_ci_low'])} to {_fmt(r['diff_ci_high'])})",
                     _fmt_p(r["welch_p"]), _fmt_p(r["paired_p"]), _fmt_p(r["p_holm"]),
                     "yes" if r["significant"] else "no"]
                    for _, r in tests.iterrows()
                ],
            ),
            "",
            "### Verdicts",
            "",
            *[f"- {v}" for v in tests["verdict"]],
            "",
        ]
    md += ["## Failed runs", ""]
    if failed is None or len(failed) == 0:
        md += ["None: every run finished.", ""]
    else:
        md += [
            "Excluded from the statistics above. Rerun each with the command shown.",
            "",
            _markdown_table(
                ["run", "run id", "status", "rerun"],
                [
                    [r.get("tags.mlflow.runName", "") if isinstance(r.get("tags.mlflow.runName"), str) else "",
                     r.get("run_id", ""), r.get("status", ""),
                     f"`{rerun_command(r.get(OVERRIDES_TAG))}`" if _parse_overrides(r.get(OVERRIDES_TAG))
                     else "(overrides not recorded)"]
                    for _, r in failed.iterrows()
                ],
            ),
            "",
        ]
    if plots:
        md += ["## Learning curves", "", "Line = mean over seeds; band = 95% CI of the mean (t).", ""]
        md += [f"![{Path(p).stem}]({_relative(Path(p), out)})" for p in plots]
        md.append("")
    paths["markdown"].write_text("\n".join(md), encoding="utf-8")
    return paths


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (for markdown image links).

    Args:
        path: the file.
        base: the report folder.
    """
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def compare_sweep(
    tracking_uri: str | None,
    experiment: str,
    sweep_id: str | None = None,
    out_dir: str | Path = "comparison",
    target_accuracy: float = 0.9,
    *,
    metric: str = DEFAULT_METRIC,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Load a sweep's runs, summarize, test, plot and write the report.

    Args:
        tracking_uri: MLflow tracking URI (``None``: env or mlflow's current).
        experiment: experiment name.
        sweep_id: the ``layerlab.sweep_id`` tag; ``None`` compares all job runs.
        out_dir: folder for the report and plots.
        target_accuracy: val accuracy for "epochs to target".
        metric: metric the pairwise tests compare.
        alpha: significance level.

    Returns:
        ``markdown``, ``csv``, ``tests_csv`` (Paths), ``plots`` (list of
        Paths), ``table`` (terminal text), ``verdicts`` (list of str), and the
        frames ``runs``, ``summary``, ``tests``, ``failed``.

    Raises:
        LayerlabError: no runs, or none of them finished.
    """
    runs = load_runs(tracking_uri, experiment, sweep_id)
    failed = _not_finished(runs)
    summary = summarize(runs, target_accuracy=target_accuracy)
    tests = pairwise_tests(runs, metric=metric, alpha=alpha)
    plots = plot_curves(runs, out_dir)
    title = f"Comparison: experiment {experiment!r}" + (f", sweep {sweep_id!r}" if sweep_id else "")
    paths = write_report(summary, tests, failed, out_dir, plots=plots, title=title)
    return {
        **paths,
        "plots": plots,
        "table": render_table(summary),
        "verdicts": list(tests["verdict"]),
        "runs": runs,
        "summary": summary,
        "tests": tests,
        "failed": failed,
    }


def _parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m experiments.compare``."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Compare the groups of a sweep (e.g. abs vs relu) from MLflow runs: "
        "means with 95%% CIs, Welch/paired t-tests, learning curves, a markdown report.",
    )
    p.add_argument("experiment", help="MLflow experiment name")
    p.add_argument("--sweep-id", default=None, help="tag layerlab.sweep_id of the sweep (default: all job runs)")
    p.add_argument(
        "--tracking-uri", default=None,
        help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})",
    )
    p.add_argument("--out", default="comparison", help="output folder (default: ./comparison)")
    p.add_argument("--target-accuracy", type=float, default=0.9, help="val accuracy for 'epochs to target'")
    p.add_argument("--metric", default=DEFAULT_METRIC, help=f"metric to test (default: {DEFAULT_METRIC})")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 2 on a :class:`LayerlabError` (message on stderr, no
        traceback unless ``LAYERLAB_DEBUG=1``).
    """
    args = _parser().parse_args(argv)
    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    try:
        result = compare_sweep(
            uri, args.experiment, sweep_id=args.sweep_id, out_dir=args.out,
            target_accuracy=args.target_accuracy, metric=args.metric, alpha=args.alpha,
        )
    except LayerlabError as exc:
        if os.environ.get("LAYERLAB_DEBUG") == "1":
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(result["table"])
    print()
    for verdict in result["verdicts"] or ["Only one group: nothing to compare."]:
        print(f"- {verdict}")
    if len(result["failed"]):
        print(f"\n{len(result['failed'])} run(s) did not finish and were excluded; rerun commands are in the report.")
    print(f"\nReport: {result['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
