"""Opening the experiment a job or a sweep writes to: one function for the solo job, the fused job and the sweep."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.tracking.doctor import close_lost
from experiments.tracking.store import ensure_experiment
from experiments.tracking.uri import check_store, resolve_uri


@dataclass(frozen=True)
class OpenExperiment:
    """The resolved tracking URI and the id of the experiment there."""

    uri: str
    id: str


def open_experiment(tracking) -> OpenExperiment:
    """Resolve the URI, check the store answers, create the experiment if needed, close runs whose process died.

    Args:
        tracking: the job's :class:`~experiments.config.schema.TrackingSchema` (``uri``, ``experiment``,
            ``artifact_root``, ``timeout_s``).
    """
    uri = resolve_uri(tracking.uri)
    check_store(uri, tracking.timeout_s)
    exp_id = ensure_experiment(uri, tracking.experiment, tracking.artifact_root)
    close_lost(uri, [exp_id], quiet=True)  # runs whose process died: FAILED, not RUNNING forever
    return OpenExperiment(uri=uri, id=exp_id)
