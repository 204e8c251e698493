"""One row per group: means, stds and 95% CIs of the final metrics, epochs to a target, time per epoch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis.groups import SEED_KEY, grouped
from experiments.analysis.metric import ACCURACY_NAMES, MetricLike, resolve_metric
from experiments.analysis.runs import EPOCH_TIME, final_values, finished, history
from experiments.analysis.stats import mean_ci
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError


def metric_columns(spec: MetricSpec) -> dict[str, str]:
    """Summary column prefix -> MLflow key of the final value it summarizes.

    The compared metric's ``val_`` and ``test_`` keys plus the losses, e.g.
    ``{"val_acc": "val_sparse_categorical_accuracy", "val_loss": "val_loss",
    "test_acc": "test_sparse_categorical_accuracy", "test_loss": "test_loss"}``
    (accuracies are shortened to ``acc``; other names are kept).

    Args:
        spec: the compared metric.
    """
    short = "acc" if spec.name in ACCURACY_NAMES else spec.name
    return {f"val_{short}": spec.val, "val_loss": "val_loss", f"test_{short}": spec.test, "test_loss": "test_loss"}


def summary_metric(summary: pd.DataFrame) -> MetricSpec:
    """The compared metric a :func:`summarize` output was made for.

    Args:
        summary: output of :func:`summarize` (not empty).
    """
    first = summary.iloc[0]
    return MetricSpec(name=str(first["metric"]), mode=str(first["mode"]))


def _epochs_to_target(cell: Any, spec: MetricSpec, target: float) -> float | None:
    """Epochs trained until the val metric first reached ``target`` (1-based).

    Args:
        cell: a ``history`` cell.
        spec: the compared metric (its ``val_`` history; reached means at
            least ``target`` for ``max``, at most for ``min``).
        target: the value to reach.

    Returns:
        e.g. 1.0 when reached after the first epoch (step 0); ``math.inf``
        when the run never reached it; ``None`` when it has no history.
    """
    hist = history(cell, spec.val)
    if hist.size == 0 or np.isnan(hist).all():
        return None
    hits = np.flatnonzero(hist >= target if spec.higher_is_better else hist <= target)
    return float(hits[0] + 1) if hits.size else math.inf


def _mean_epoch_time(row: pd.Series) -> float:
    """Mean seconds per epoch of one run (history, else the final metric).

    Args:
        row: one run.
    """
    hist = history(row.get("history"), EPOCH_TIME)
    hist = hist[~np.isnan(hist)]
    if hist.size:
        return float(hist.mean())
    value = row.get(f"metrics.{EPOCH_TIME}", math.nan)
    return float(value) if value is not None else math.nan


def summarize(
    df: pd.DataFrame,
    target: float | None = 0.9,
    *,
    metric: MetricLike = None,
    mode: str | None = None,
    replicate_key: str = SEED_KEY,
) -> pd.DataFrame:
    """One row per group with means, stds and 95% CIs of the final metrics.

    Only FINISHED runs are used.

    Args:
        df: runs frame (see :mod:`experiments.analysis.runs`).
        target: value of the val metric for the "epochs to target" columns
            (``None``: not computed).
        metric: the compared metric (base name, ``test_``/``val_`` key or
            spec); ``None``: the runs' ``layerlab.metric`` tag.
        mode: ``"max"``/``"min"``; default from the tag or the metric's name.
        replicate_key: the replicate key (not a group key).

    Returns:
        Columns: ``group`` (label), one column per group key, ``n`` (finished
        runs), then for each prefix of :func:`metric_columns` (``val_acc``,
        ``val_loss``, ``test_acc``, ``test_loss`` for an accuracy):
        ``<p>_mean``, ``<p>_std`` (ddof=1), ``<p>_ci95`` (half width of the
        t-based 95% CI of the mean; NaN for n < 2); then ``metric`` and
        ``mode`` (the compared metric), ``target``, ``epochs_to_target_mean``
        (mean over the runs that reached it, 1-based epochs),
        ``n_reached_target``, ``n_missed_target`` (runs whose history never
        reached it; runs without any val history are in neither count), and
        ``epoch_time_s_mean`` (mean over runs of each run's mean epoch time).

    Raises:
        LayerlabError: no FINISHED run.
    """
    spec = resolve_metric(df, metric, mode)
    fin = finished(df)
    if fin.empty:
        raise LayerlabError(
            f"no FINISHED runs to summarize ({len(df)} runs, none finished)",
            fix="rerun the failed jobs (see the failed-runs list) and compare again",
        )
    _, labels, groups = grouped(fin, replicate_key)
    rows = []
    for label, values in groups:
        sub = fin[labels == label]
        row: dict[str, Any] = {"group": label, **values, "n": len(sub)}
        for prefix, key in metric_columns(spec).items():
            mean, std, half, _ = mean_ci(final_values(sub, key))
            row[f"{prefix}_mean"], row[f"{prefix}_std"], row[f"{prefix}_ci95"] = mean, std, half
        row["metric"], row["mode"], row["target"] = spec.name, spec.mode, target
        epochs = (
            []
            if target is None
            else [_epochs_to_target(cell, spec, target) for cell in sub.get("history", [None] * len(sub))]
        )
        reached = [e for e in epochs if e is not None and math.isfinite(e)]
        row["epochs_to_target_mean"] = float(np.mean(reached)) if reached else math.nan
        row["n_reached_target"] = len(reached)
        row["n_missed_target"] = sum(1 for e in epochs if e == math.inf)
        row["epoch_time_s_mean"] = mean_ci(_mean_epoch_time(r) for _, r in sub.iterrows())[0]
        rows.append(row)
    return pd.DataFrame(rows)
