"""Bulk reads of MLflow metric histories; checked against mlflow 3.17.2 (``tests/test_api.py`` reads a real
SQLite store through them and fails when they change; the REST path has no test: starting
``mlflow server`` costs the suite a minute).

MLflow's public client reads one metric of one run per call
(``MlflowClient.get_metric_history``): ``runs × metrics`` round trips, which
dominate loading a large sweep.  Two faster paths, both internals:

* a database store (``sqlite:///``, ``postgresql://``, ``mysql://``): one SQL
  query per chunk of runs on MLflow's ``metrics`` table (columns ``run_uuid``,
  ``key``, ``value``, ``timestamp``, ``step``, ``is_nan``: MLflow stores a
  NaN as ``value=0, is_nan=1``);
* a tracking server (``http(s)://``): the server's ``get-history-bulk``
  endpoint, which the MLflow UI's charts use (every point of one metric for
  up to :data:`REST_RUNS_PER_CALL` runs per call; the public client has no
  call for it).

Either returns the points in long format; :func:`metric_points` picks the
path from the URI and falls back to one public call per run and metric when
neither applies (a file store, a plugin store).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

POINT_COLUMNS = ["run_id", "key", "step", "value", "timestamp"]
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SQL_RUNS_PER_QUERY = 500  # well under SQLite's 32,766 bound variables
REST_BULK_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
REST_RUNS_PER_CALL = 100  # the server's limit of run ids per get-history-bulk call
REST_MAX_POINTS = 25000  # the server's limit of points per get-history-bulk answer


def is_database_uri(uri: str) -> bool:
    """Whether ``uri`` names a SQL database MLflow stores runs in (``sqlite:///...``, ``postgresql://...``)."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return scheme in SQL_SCHEMES


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sql_metric_points(uri: str, run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """Every logged point of ``keys`` for ``run_ids`` from MLflow's SQL store, one query per chunk of runs.

    Args:
        uri: the store's URI, as MLflow takes it (an SQLAlchemy URL).
        run_ids: the runs.
        keys: the metric keys.

    Returns:
        Columns :data:`POINT_COLUMNS` (``value`` NaN where MLflow stored a NaN).
    """
    import sqlalchemy as sa

    query = sa.text(
        "SELECT run_uuid AS run_id, key, step, value, timestamp, is_nan FROM metrics "
        "WHERE run_uuid IN :ids AND key IN :keys"
    ).bindparams(sa.bindparam("ids", expanding=True), sa.bindparam("keys", expanding=True))
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    frames = []
    try:
        with engine.connect() as conn:
            for chunk in _chunks(list(run_ids), SQL_RUNS_PER_QUERY):
                rows = conn.execute(query, {"ids": list(chunk), "keys": list(keys)}).all()
                if rows:  # by columns: pandas probing each Row object costs more than the query
                    frames.append(pd.DataFrame(dict(zip(POINT_COLUMNS + ["is_nan"], zip(*rows)))))
    finally:
        engine.dispose()
    if not frames:
        return pd.DataFrame(columns=POINT_COLUMNS)
    points = pd.concat(frames, ignore_index=True)
    points["value"] = points["value"].astype(float).where(~points.pop("is_nan").astype(bool))
    return points


def rest_metric_points(client: Any, run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """The points of ``keys`` for ``run_ids`` from a tracking server, :data:`REST_RUNS_PER_CALL` runs per call.

    The server's ``get-history-bulk`` endpoint (the MLflow UI's) returns every point of one metric for up to
    100 runs, at most :data:`REST_MAX_POINTS` in all: a full answer is asked again in halves.

    Args:
        client: an ``MlflowClient`` of an ``http(s)://`` tracking URI.
        run_ids: the runs.
        keys: the metric keys.

    Returns:
        Columns :data:`POINT_COLUMNS`.
    """
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    creds = client._tracking_client.store.get_host_creds()
    rows: list[tuple] = []

    def fetch(chunk: Sequence[str], key: str) -> None:
        response = http_request(
            creds,
            REST_BULK_ENDPOINT,
            "GET",
            params={"run_id": list(chunk), "metric_key": key, "max_results": REST_MAX_POINTS},
        )
        metrics = verify_rest_response(response, REST_BULK_ENDPOINT).json().get("metrics", [])
        if len(metrics) >= REST_MAX_POINTS:  # cut off: ask again in halves (one run alone: the public call)
            if len(chunk) == 1:
                rows.extend(
                    (chunk[0], p.key, p.step, p.value, p.timestamp) for p in client.get_metric_history(chunk[0], key)
                )
                return
            half = len(chunk) // 2
            fetch(chunk[:half], key)
            fetch(chunk[half:], key)
            return
        rows.extend(
            (m["run_id"], m["key"], int(m.get("step", 0)), float(m["value"]), int(m["timestamp"])) for m in metrics
        )

    for key in keys:
        for chunk in _chunks(list(run_ids), REST_RUNS_PER_CALL):
            fetch(chunk, key)
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


def per_run_metric_points(client: Any, run_ids: Sequence[str], keys: Sequence[str]) -> pd.DataFrame:
    """The public path: ``get_metric_history`` once per run and metric (any store)."""
    rows = [
        (run_id, p.key, p.step, p.value, p.timestamp)
        for run_id in run_ids
        for key in keys
        for p in client.get_metric_history(run_id, key)
    ]
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


def metric_points(uri: str, run_ids: Sequence[str], keys: Sequence[str], client: Any = None) -> pd.DataFrame:
    """Every logged point of ``keys`` for ``run_ids``, by the fastest path the store offers.

    Args:
        uri: the resolved tracking URI.
        run_ids: the runs.
        keys: the metric keys.
        client: an ``MlflowClient`` for ``uri`` (made here when None).

    Returns:
        Columns :data:`POINT_COLUMNS`, one row per logged point (a step logged twice appears twice).
    """
    if not run_ids or not keys:
        return pd.DataFrame(columns=POINT_COLUMNS)
    if is_database_uri(uri):
        return sql_metric_points(uri, run_ids, keys)
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
    if uri.startswith(("http://", "https://")):
        return rest_metric_points(client, run_ids, keys)
    return per_run_metric_points(client, run_ids, keys)
