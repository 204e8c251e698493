"""The sweep running in this process: its parent run, and where its report goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.config.metrics import MetricSpec


@dataclass
class SweepState:
    """One sweep's parent run and settings, from ``on_multirun_start`` to its finalisation.

    Args:
        uri: the tracking URI (resolved once, for the parent and every job).
        experiment: the MLflow experiment name; experiment_id its id.
        parent_run_id: the parent run every job attaches to (by tag query).
        sweep_id: the ``layerlab.sweep_id`` tag shared by the parent and its jobs.
        sweep_dir: Hydra's sweep folder (summary and comparison reports go there).
        metric: the compared metric (:func:`experiments.config.metrics.compared_metric`).
        compare: run the statistical comparison at the end.
        target: the validation value whose "epochs to reach" is reported.
        dry_run: a ``dry_run=true`` sweep: no parent run, nothing logged (``parent_run_id`` is None).
        compare_options: ``replicate_key``, ``compare_by``, ``all_pairs`` of the ``sweep`` group
            (:func:`experiments.sweeps.ui.compare_options`).
    """

    uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str | None
    sweep_id: str
    sweep_dir: Path
    metric: MetricSpec
    compare: bool = True
    target: float = 0.9
    dry_run: bool = False
    finalized: bool = False
    compare_options: dict = field(default_factory=dict)
    note: str = ""  # text put first in the parent's description (an Optuna study's best trial)
    heartbeat: Any = None  # the parent run's Heartbeat (experiments.tracking.heartbeat), stopped at finalisation
    rounds: str = ""  # how the rounds of hydra/sweeper=rounds ended (analysis.rounds.rounds_headline), for the verdict
    planned_jobs: int | None = None  # the jobs the sweep lists (None: a search, or not countable), for the summary
    hydra_overrides: list | None = None  # the sweep's hydra... overrides as its start read them (completing command)
    complete: str = ""  # the command that completes the sweep (set by the summary when a job did not finish)
