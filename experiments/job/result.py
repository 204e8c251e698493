"""What a job reports back to the runner (and prints as its last line)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class JobResult:
    """The outcome of one job.

    Args:
        status: FINISHED, FAILED, KILLED, SKIPPED, DRY_RUN or LISTED.
        run_id: the MLflow run (None when nothing was logged).
        experiment_id: the MLflow experiment of the run.
        metrics: the last epoch's logs and the final train_/test_ scores.
    """

    status: str
    run_id: str | None = None
    experiment_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def finished_metrics(history, scores: dict[str, float]) -> dict[str, float]:
    """What a FINISHED run reports: the last epoch's logs (a Keras ``History``) and the final train_/test_ scores."""
    last = {k: float(v[-1]) for k, v in (history.history or {}).items() if v}
    return {**last, **scores}
