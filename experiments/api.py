"""layerlab from Python (a notebook, a script): run jobs and sweeps, get their results as pandas tables.

The public API of the project; everything else under ``experiments`` is internal. ::

    from experiments import api

    cfg = api.compose(["model.activation=relu"])          # the config runner.py would run (Hydra's Compose API)
    s = api.sweep(["model.activation=abs,relu", "seed=0,1,2", "training.epochs=3"])
    s.runs()          # one row per run: status, swept keys, seed, final and best metrics, wall time, run id
    s.histories()     # per-epoch values, long format (run_id, swept keys, seed, key, epoch, value)
    c = s.compare()   # the sweep comparison: c.summary (groups, mean, 95% CI), c.tests (per factor), c.verdicts

    api.runs("layerlab", sweep="2026-12-05_11-00-00-1a2b3c")   # the same tables for any earlier sweep

:func:`run` and :func:`sweep` start ``python runner.py`` (``-m`` for a sweep)
in a child process, exactly as the shell would: the same launchers,
callbacks, parent run and comparison, and a fresh process per backend
(``backend=jax``), so a notebook kernel never holds TensorFlow's state.
:func:`runs`, :func:`histories` and :func:`compare` read MLflow in bulk (one
paged search for the runs, one query per 500 runs for the histories, or the
server's bulk history endpoint): BENCHMARKS.md, sections 4b and 4c, times
1,000 and 10,000 runs against the per-run calls.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.analysis.compare import comparison_frames
from experiments.analysis.groups import SEED_KEY, group_columns, key_values
from experiments.analysis.metric import MetricLike, resolve_metric
from experiments.analysis.runs import history_dicts, history_keys, metric_histories, search_job_runs
from experiments.api_processes import failure_of, find_run, launch_runner
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError
from experiments.tracking import tags
from experiments.tracking.uri import PROJECT_ROOT, resolve_uri

__all__ = ["Comparison", "Run", "Sweep", "compare", "compose", "histories", "run", "runs", "sweep"]

DEFAULT_EXPERIMENT = "layerlab"  # conf/tracking/local.yaml's tracking.experiment


def compose(overrides: Sequence[str] = (), *, validate: bool = True):
    """The config ``python runner.py OVERRIDES`` would run, composed with Hydra's Compose API (no training).

    Args:
        overrides: Hydra overrides as on the command line (``"model=class_mlp"``, ``"training.epochs=2"``);
            one value per key (a sweep's ``a,b`` is for :func:`sweep`).
        validate: also check it against the schema (``experiments/config/schema.py``).

    Returns:
        The composed ``omegaconf.DictConfig``.

    Raises:
        LayerlabError: an invalid value (one paragraph naming the key and the fix).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3", job_name="api"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except HydraException as exc:
        raise LayerlabError(
            str(exc).splitlines()[0],
            path="overrides",
            value=list(overrides),
            fix="check the key and value (python runner.py --help lists the config groups)",
        ) from exc
    if validate:
        from experiments.config.schema import validate as check

        check(cfg)
    return cfg


@dataclass
class Run:
    """One finished job (:func:`run`).

    Attributes:
        run_id: the MLflow run.
        status: ``FINISHED``, ``FAILED`` or ``KILLED``.
        experiment: the MLflow experiment name.
        tracking_uri: where it was logged.
        metrics: the run's final metric values (``test_<metric>``, ``val_loss``...).
        params: the run's params (the flattened config, as strings).
        tags: the run's tags (``layerlab.backend``, ``layerlab.overrides``...).
        log: what the job printed.
    """

    run_id: str
    status: str
    experiment: str
    tracking_uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict, repr=False)
    log: str = field(default="", repr=False)

    def history(self, keys: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-epoch values of this run, long format (``key``, ``epoch``, ``value``).

        Args:
            keys: metric keys (default: every metric the run logged).
        """
        keys = list(keys) if keys is not None else sorted(self.metrics)
        points = metric_histories(self.tracking_uri, [self.run_id], keys)
        return points.rename(columns={"step": "epoch"})[["key", "epoch", "value"]]


@dataclass
class Comparison:
    """The sweep comparison as tables (what ``python -m experiments.compare`` prints and writes).

    Attributes:
        metric: the compared metric (``metric.test`` is the column compared, ``metric.higher_is_better``).
        summary: one row per group: the swept keys' values, ``n``, mean, std, 95% CI bounds.
        tests: one row per factor comparison (difference, its CI, p-value, Holm-adjusted, verdict).
        interactions: factor-by-factor interaction tests (empty with one factor).
        pairs: every pair of groups (``None`` unless ``all_pairs=True``).
        verdicts: the sentences of the report, factors first.
        runs: the :func:`runs` table the numbers come from.
    """

    metric: MetricSpec
    summary: pd.DataFrame
    tests: pd.DataFrame
    interactions: pd.DataFrame
    pairs: pd.DataFrame | None
    verdicts: list[str]
    runs: pd.DataFrame


@dataclass
class Sweep:
    """A sweep (:func:`sweep`), or any earlier one by its id: ``Sweep(sweep_id, experiment)``.

    Attributes:
        sweep_id: the ``layerlab.sweep_id`` tag of the sweep's runs.
        experiment: the MLflow experiment name.
        tracking_uri: where it was logged (``None``: the project's default store).
        returncode: the exit status of ``runner.py -m`` (1 when a job failed; its run is in :meth:`runs`).
        log: what the sweep printed.
    """

    sweep_id: str
    experiment: str = DEFAULT_EXPERIMENT
    tracking_uri: str | None = None
    returncode: int = 0
    log: str = field(default="", repr=False)

    def runs(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`runs` of this sweep."""
        return runs(self.experiment, self.sweep_id, self.tracking_uri, **kwargs)

    def histories(self, **kwargs: Any) -> pd.DataFrame:
        """:func:`histories` of this sweep."""
        return histories(self.experiment, self.sweep_id, self.tracking_uri, **kwargs)

    def compare(self, **kwargs: Any) -> Comparison:
        """:func:`compare` of this sweep."""
        return compare(self.experiment, self.sweep_id, self.tracking_uri, **kwargs)


def run(
    overrides: Sequence[str] = (), *, tracking_uri: str | None = None, echo: bool = False, timeout: float | None = None
) -> Run:
    """Train one job, as ``python runner.py OVERRIDES`` does, and return its MLflow run.

    Args:
        overrides: Hydra overrides (``"backend=jax"``, ``"training.epochs=2"``).
        tracking_uri: the MLflow store (``None``: ``$MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``).
        echo: print the job's output as it comes.
        timeout: seconds before the job is killed.

    Returns:
        The :class:`Run` (its status says whether training finished).

    Raises:
        LayerlabError: the job logged no run (an invalid override: the job's own message).
    """
    out_dir = Path(tempfile.gettempdir()) / f"layerlab-api-{uuid.uuid4().hex[:12]}"
    proc = launch_runner([*overrides, f"hydra.run.dir={out_dir}"], tracking_uri, echo, timeout)
    uri = resolve_uri(tracking_uri)
    found = find_run(uri, tags.OUTPUT_DIR, str(out_dir.resolve()))
    if found is None:
        raise failure_of(proc, "the job")
    from mlflow import MlflowClient

    experiment = MlflowClient(tracking_uri=uri).get_experiment(found.info.experiment_id).name
    return Run(
        run_id=found.info.run_id,
        status=found.info.status,
        experiment=experiment,
        tracking_uri=uri,
        metrics=dict(found.data.metrics),
        params=dict(found.data.params),
        tags=dict(found.data.tags),
        log=proc.stdout,
    )


def sweep(
    overrides: Sequence[str] = (), *, tracking_uri: str | None = None, echo: bool = False, timeout: float | None = None
) -> Sweep:
    """Run a sweep, as ``python runner.py -m OVERRIDES`` does (its summary and comparison included).

    Args:
        overrides: Hydra sweep overrides (``"model.activation=abs,relu"``, ``"seed=0,1,2"``,
            ``"hydra/launcher=joblib"``).
        tracking_uri, echo, timeout: as in :func:`run`.

    Returns:
        The :class:`Sweep`; a failed job does not raise (its run is FAILED in :meth:`Sweep.runs`).

    Raises:
        LayerlabError: the sweep logged no parent run (an invalid override: the sweep's own message).
    """
    sweep_dir = Path(tempfile.gettempdir()) / f"layerlab-api-{uuid.uuid4().hex[:12]}"
    proc = launch_runner(["-m", *overrides, f"hydra.sweep.dir={sweep_dir}"], tracking_uri, echo, timeout)
    uri = resolve_uri(tracking_uri)
    parent = find_run(uri, tags.SWEEP_DIR, str(sweep_dir.resolve()))
    if parent is None:
        raise failure_of(proc, "the sweep")
    from mlflow import MlflowClient

    experiment = MlflowClient(tracking_uri=uri).get_experiment(parent.info.experiment_id).name
    return Sweep(
        sweep_id=parent.data.tags[tags.SWEEP_ID],
        experiment=experiment,
        tracking_uri=uri,
        returncode=proc.returncode,
        log=proc.stdout,
    )


def _tidy(raw: pd.DataFrame, spec: MetricSpec, replicate_key: str) -> pd.DataFrame:
    """One row per run from the search frame plus its ``history`` column (see :func:`runs`)."""
    swept = group_columns(raw, replicate_key)
    table = pd.DataFrame({"run_id": raw["run_id"], "status": raw["status"]}, index=raw.index)
    table = table.join(key_values(raw, swept))
    param = raw.get(f"params.{replicate_key}")
    if param is not None:
        table[replicate_key] = pd.to_numeric(param, errors="coerce").astype("Int64")
    if "params.backend" in raw.columns and "backend" not in table.columns:  # the Keras backend, also when not swept
        table["backend"] = raw["params.backend"]
    for col in sorted(c for c in raw.columns if c.startswith("metrics.")):
        table[col[len("metrics.") :]] = pd.to_numeric(raw[col], errors="coerce")
    best, best_epoch = [], []
    pick = np.nanargmax if spec.higher_is_better else np.nanargmin
    for cell in raw["history"]:
        values = np.asarray(cell.get(spec.val, []), dtype=float)
        if values.size and not np.isnan(values).all():
            i = int(pick(values))
            best.append(values[i])
            best_epoch.append(i + 1)
        else:
            best.append(np.nan)
            best_epoch.append(pd.NA)
    table[f"best_{spec.val}"] = best
    table["best_epoch"] = pd.array(best_epoch, dtype="Int64")
    wall = (
        pd.to_numeric(raw.get(f"tags.{tags.WALL_TIME_S}"), errors="coerce")
        if f"tags.{tags.WALL_TIME_S}" in raw.columns
        else pd.Series(np.nan, index=raw.index)
    )
    elapsed = (raw["end_time"] - raw["start_time"]).dt.total_seconds() if "end_time" in raw.columns else np.nan
    table["wall_time_s"] = wall.fillna(pd.Series(elapsed, index=raw.index))
    table["start_time"] = raw["start_time"]
    table["run_name"] = raw.get("tags.mlflow.runName")
    table["sweep_id"] = raw.get(f"tags.{tags.SWEEP_ID}")
    return table.reset_index(drop=True)


def _load(
    experiment: str,
    sweep: str | None,
    tracking_uri: str | None,
    metric: MetricLike,
    mode: str | None,
    extra_keys: Sequence[str] = (),
) -> tuple[str, pd.DataFrame, MetricSpec, pd.DataFrame]:
    """Runs (search frame with ``history``), the metric, and the long histories of its keys plus ``extra_keys``."""
    uri, raw = search_job_runs(tracking_uri, experiment, sweep)
    spec = resolve_metric(raw, metric, mode)
    run_ids = raw["run_id"].tolist()
    points = metric_histories(uri, run_ids, [*history_keys(spec), *extra_keys])
    raw["history"] = history_dicts(points, run_ids)
    return uri, raw, spec, points


def runs(
    experiment: str = DEFAULT_EXPERIMENT,
    sweep: str | None = None,
    tracking_uri: str | None = None,
    *,
    metric: MetricLike = None,
    mode: str | None = None,
    status: str | None = None,
    replicate_key: str = SEED_KEY,
) -> pd.DataFrame:
    """The job runs of an experiment (or of one sweep), one row per run.

    Args:
        experiment: the MLflow experiment name (``tracking.experiment``).
        sweep: a sweep id (the ``layerlab.sweep_id`` tag; ``Sweep.sweep_id``); ``None``: every job run.
        tracking_uri: the MLflow store (``None``: ``$MLFLOW_TRACKING_URI``, else the project's ``mlflow.db``).
        metric: the metric whose best value is reported (default: the one the runs were judged by).
        mode: ``max`` or ``min`` (default: the runs' own).
        status: keep only runs with this status (``FINISHED``).
        replicate_key: the key whose values are replicates.

    Returns:
        Columns ``run_id``, ``status``, one per swept key (values as strings, as typed), ``seed``, ``backend``
        (when the runs logged it), one per
        final metric (``test_<metric>``, ``val_loss``, ...), ``best_val_<metric>`` and ``best_epoch``
        (1-based), ``wall_time_s``, ``start_time``, ``run_name``, ``sweep_id``.

    Raises:
        LayerlabError: the store, the experiment or the sweep has no job runs.
    """
    _, raw, spec, _ = _load(experiment, sweep, tracking_uri, metric, mode)
    table = _tidy(raw, spec, replicate_key)
    return table if status is None else table[table["status"] == status].reset_index(drop=True)


def histories(
    experiment: str = DEFAULT_EXPERIMENT,
    sweep: str | None = None,
    tracking_uri: str | None = None,
    *,
    keys: Sequence[str] | None = None,
    metric: MetricLike = None,
    replicate_key: str = SEED_KEY,
) -> pd.DataFrame:
    """Per-epoch metrics of the job runs, long format (one row per run, metric and epoch).

    Args:
        experiment, sweep, tracking_uri, metric, replicate_key: as in :func:`runs`.
        keys: metric keys (default: the compared metric's ``val_<m>``, ``val_loss``, ``<m>``, ``loss``,
            ``epoch_time_s``).

    Returns:
        Columns ``run_id``, one per swept key, ``seed``, ``key``, ``epoch`` (0-based), ``value``: ready for
        ``df.pivot_table`` or a plot per group.
    """
    uri, raw = search_job_runs(tracking_uri, experiment, sweep)
    spec = resolve_metric(raw, metric, None)
    points = metric_histories(uri, raw["run_id"].tolist(), list(keys) if keys else history_keys(spec))
    swept = group_columns(raw, replicate_key)
    labels = key_values(raw, swept)
    labels.insert(0, "run_id", raw["run_id"])
    if f"params.{replicate_key}" in raw.columns:
        labels[replicate_key] = pd.to_numeric(raw[f"params.{replicate_key}"], errors="coerce").astype("Int64")
    long = points.rename(columns={"step": "epoch"})[["run_id", "key", "epoch", "value"]]
    return labels.merge(long, on="run_id", how="inner").reset_index(drop=True)


def compare(
    experiment: str = DEFAULT_EXPERIMENT,
    sweep: str | None = None,
    tracking_uri: str | None = None,
    *,
    metric: MetricLike = None,
    mode: str | None = None,
    target: float | None | str = "auto",
    alpha: float = 0.05,
    replicate_key: str = SEED_KEY,
    compare_by: Sequence[str] | None = None,
    all_pairs: bool = False,
    min_effect: float | None = None,
    equivalence_margin: float | None = None,
) -> Comparison:
    """Compare the groups of a sweep: means with 95% CIs, and a test per factor (nothing written to disk).

    Args:
        experiment, sweep, tracking_uri, metric, mode, replicate_key: as in :func:`runs`.
        target, alpha, compare_by, all_pairs, min_effect, equivalence_margin: as in
            ``python -m experiments.compare`` (``--help``).

    Returns:
        A :class:`Comparison` of DataFrames.
    """
    from experiments.analysis.factors import all_verdicts

    _, raw, spec, _ = _load(experiment, sweep, tracking_uri, metric, mode)
    frames = comparison_frames(
        raw,
        target,
        metric=spec,
        alpha=alpha,
        replicate_key=replicate_key,
        compare_by=compare_by,
        all_pairs=all_pairs,
        min_effect=min_effect,
        equivalence_margin=equivalence_margin,
    )
    return Comparison(
        metric=frames["metric"],
        summary=frames["summary"],
        tests=frames["tests"],
        interactions=frames["interactions"],
        pairs=frames["pairs"],
        verdicts=all_verdicts(frames["tests"], frames["interactions"], frames["pairs"]),
        runs=_tidy(raw, frames["metric"], replicate_key),
    )
