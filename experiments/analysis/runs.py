"""Load the job runs of a sweep, with their per-epoch metric histories, from MLflow into one DataFrame.

Data contract (what the rest of layerlab logs, one MLflow run per job):

* tags ``layerlab.role`` (``job``; the sweep's parent run has ``parent``),
  ``layerlab.sweep_id``, ``layerlab.overrides`` (JSON list of the Hydra
  overrides as typed, e.g. ``["model.activation=abs", "seed=0"]``),
  ``layerlab.metric`` / ``layerlab.metric_mode`` (the metric the run is
  judged by, see :mod:`experiments.analysis.metric`);
* params: the flattened resolved config (``seed``, ``model.activation``...);
* per-epoch metrics with ``step=epoch`` (0-based): ``loss``, ``<metric>``,
  ``val_loss``, ``val_<metric>``, ``epoch_time_s``; final values
  ``test_loss`` and ``test_<metric>``;
* status ``FINISHED`` or ``FAILED``.  Only FINISHED runs enter the statistics;
  the others are listed in the report.

The DataFrame that :func:`load_runs` returns (and that the other modules of
:mod:`experiments.analysis` take) is the frame of :func:`mlflow.search_runs`
(columns ``run_id``, ``status``, ``params.<key>``, ``metrics.<key>``,
``tags.<key>``...) plus a ``history`` column: a dict ``{metric key: [value at
epoch 0, epoch 1, ...]}`` (NaN where an epoch was not logged).  Hand-built
frames with the same column names work too, which is how the pure functions
are tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.adapters.mlflow_store import metric_points
from experiments.analysis.metric import MetricLike, resolve_metric
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError
from experiments.tracking import tags
from experiments.tracking.uri import resolve_uri

EPOCH_TIME = "epoch_time_s"


def history_keys(spec: MetricSpec) -> tuple[str, ...]:
    """The per-epoch metrics :func:`load_runs` fetches for a compared metric.

    Args:
        spec: the compared metric.

    Returns:
        ``val_<name>``, ``val_loss``, ``<name>``, ``loss``, ``epoch_time_s``
        (without repeats, e.g. when the metric is ``loss``).
    """
    return tuple(dict.fromkeys((spec.val, "val_loss", spec.name, "loss", EPOCH_TIME)))


def _check_sqlite_exists(uri: str) -> None:
    """Refuse a ``sqlite:///`` URI whose file does not exist.

    MLflow would silently create an empty database there, and the user would
    then read "experiment not found" instead of "wrong path".

    Args:
        uri: the tracking URI.
    """
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        db = Path(uri[len(prefix) :])
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


def metric_histories(uri: str, run_ids: Sequence[str], keys: Iterable[str], client: Any = None) -> pd.DataFrame:
    """Per-epoch values of ``keys`` for ``run_ids``, in bulk (not one call per run and metric).

    Args:
        uri: the resolved tracking URI (a SQL store is read with one query per
            500 runs, a tracking server with one call per 100 runs and metric:
            :mod:`experiments.adapters.mlflow_store`).
        run_ids: the runs.
        keys: metric keys.
        client: an ``MlflowClient`` for ``uri``, when the caller has one.

    Returns:
        Long format, columns ``run_id``, ``key``, ``step``, ``value``,
        ``timestamp``, sorted by run, key and step; a step logged twice (a
        retried epoch) keeps its latest value.
    """
    points = metric_points(uri, list(run_ids), list(dict.fromkeys(keys)), client=client)
    if points.empty:
        return points
    points = points.astype({"step": "int64", "timestamp": "int64", "value": "float64"})
    points = points.sort_values("timestamp", kind="stable")
    points = points.drop_duplicates(["run_id", "key", "step"], keep="last")
    return points.sort_values(["run_id", "key", "step"], kind="stable").reset_index(drop=True)


def history_dicts(points: pd.DataFrame, run_ids: Sequence[str]) -> list[dict[str, list[float]]]:
    """The ``history`` cells of :func:`load_runs` from :func:`metric_histories`' long frame.

    Args:
        points: long frame (one row per run, key and step, no repeats),
            sorted by run, key and step as :func:`metric_histories` returns it.
        run_ids: the runs, in the order of the cells returned.

    Returns:
        One ``{key: [value at step 0, step 1, ...]}`` per run (NaN where a
        step is missing; metrics never logged are left out).
    """
    cells: dict[str, dict[str, list[float]]] = {rid: {} for rid in run_ids}
    points = points[points["step"] >= 0]
    if points.empty:
        return [cells[rid] for rid in run_ids]
    runs, keys = points["run_id"].to_numpy(), points["key"].to_numpy()
    steps, values = points["step"].to_numpy(), points["value"].to_numpy(dtype=float)
    # Segments of one (run, key), in the frame's order (sorted by run, key and step).
    starts = np.flatnonzero(np.r_[True, (runs[1:] != runs[:-1]) | (keys[1:] != keys[:-1])])
    for a, b in zip(starts, np.r_[starts[1:], len(points)]):
        cell = cells.get(runs[a])
        if cell is None:
            continue
        n = int(steps[b - 1]) + 1
        if n == b - a:  # every step 0..n-1 logged: the values as they are
            cell[keys[a]] = values[a:b].tolist()
        else:
            filled = np.full(n, np.nan)
            filled[steps[a:b]] = values[a:b]
            cell[keys[a]] = filled.tolist()
    return [cells[rid] for rid in run_ids]


def search_job_runs(tracking_uri: str | None, experiment: str, sweep_id: str | None = None) -> tuple[str, pd.DataFrame]:
    """The job runs of an experiment (optionally of one sweep), as :func:`mlflow.search_runs` gives them.

    One paged search (MLflow reads up to 1,000 runs per page with their params, tags and latest metrics).

    Args:
        tracking_uri: as in :func:`load_runs`.
        experiment: experiment name.
        sweep_id: keep only runs tagged ``layerlab.sweep_id`` = this value.

    Returns:
        The resolved tracking URI and the frame (index 0..n-1).

    Raises:
        LayerlabError: the store, the experiment or any matching run is missing.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = resolve_uri(tracking_uri)
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

    filters = [f"tags.`{tags.ROLE}` = {_quote_filter_value(tags.ROLE_JOB, 'role')}"]
    if sweep_id is not None:
        filters.append(f"tags.`{tags.SWEEP_ID}` = {_quote_filter_value(str(sweep_id), 'sweep_id')}")

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
            f"no runs found for {where} (looked for runs tagged {tags.ROLE}={tags.ROLE_JOB})",
            path="sweep" if sweep_id else "experiment",
            fix=f"check the sweep id (tag {tags.SWEEP_ID} of the sweep's runs) and the experiment name",
        )

    return uri, df.reset_index(drop=True)


def load_runs(
    tracking_uri: str | None,
    experiment: str,
    sweep_id: str | None = None,
    *,
    metric: MetricLike = None,
    mode: str | None = None,
) -> pd.DataFrame:
    """Load the job runs of an experiment (optionally of one sweep) from MLflow.

    Args:
        tracking_uri: MLflow tracking URI, resolved by
            :func:`experiments.tracking.uri.resolve_uri` (``None``:
            ``$MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``).
        experiment: experiment name.
        sweep_id: keep only runs tagged ``layerlab.sweep_id`` = this value.
        metric: the compared metric whose histories to fetch (see
            :func:`experiments.analysis.metric.resolve_metric`; ``None``: the
            runs' ``layerlab.metric`` tag).
        mode: its direction (only checked here).

    Returns:
        The :func:`mlflow.search_runs` frame (only runs tagged
        ``layerlab.role=job``, all statuses) plus a ``history`` column:
        ``{key: [value per epoch]}`` for :func:`history_keys` of the metric.

    Raises:
        LayerlabError: the store, the experiment or any matching run is missing.
    """
    uri, df = search_job_runs(tracking_uri, experiment, sweep_id)
    keys = history_keys(resolve_metric(df, metric, mode))
    run_ids = df["run_id"].tolist()
    df["history"] = history_dicts(metric_histories(uri, run_ids, keys), run_ids)
    return df


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """Keep the FINISHED runs (all runs when there is no ``status`` column).

    Args:
        df: runs frame.
    """
    if "status" not in df.columns:
        return df
    return df[df["status"] == "FINISHED"]


def not_finished(df: pd.DataFrame) -> pd.DataFrame:
    """The runs excluded from statistics (FAILED, KILLED, still RUNNING).

    Args:
        df: runs frame.
    """
    if "status" not in df.columns:
        return df.iloc[0:0]
    return df[df["status"] != "FINISHED"]


def history(cell: Any, key: str) -> np.ndarray:
    """The per-epoch values of one metric from a ``history`` cell (empty when absent).

    Args:
        cell: ``{key: [values by epoch]}`` (or a missing value).
        key: MLflow metric key.
    """
    if not isinstance(cell, dict) or key not in cell:
        return np.array([], dtype=float)
    return np.asarray(cell[key], dtype=float)


def final_values(df: pd.DataFrame, key: str) -> pd.Series:
    """Final values of a metric per run, NaN where missing.

    Uses ``metrics.<key>`` (MLflow's latest value = value at the last
    step); falls back to the last non-NaN history value.

    Args:
        df: runs frame.
        key: MLflow metric key.
    """
    col = f"metrics.{key}"
    values = pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(np.nan, index=df.index)
    if "history" in df.columns:
        for idx in values.index[values.isna()]:
            hist = history(df.at[idx, "history"], key)
            finite = hist[~np.isnan(hist)]
            if finite.size:
                values.at[idx] = finite[-1]
    return values.astype(float)
