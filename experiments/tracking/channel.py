"""One run's logging calls, kept safe when the tracking server goes away mid-run.

Every MLflow call of a job goes through :meth:`RunChannel.track`.  While the
server answers, calls go through; the first call that fails *because the
server is gone* switches the channel offline: training goes on, later calls
are only noted, and at the end :meth:`RunChannel.leave_for_upload` writes
``pending.json`` so that ``python -m experiments.upload <output dir>``
finishes the run once the server is back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.errors import TrackingError
from experiments.tracking.redaction import redact
from experiments.tracking.uri import check_store


class RunChannel:
    """The path from a job to its MLflow run.

    Args:
        uri: the tracking URI.
        enabled: False for processes that must not log (non-chief multi-worker tasks).
    """

    def __init__(self, uri: str, enabled: bool = True):
        self.uri = uri
        self.enabled = enabled
        self.offline_reason: str | None = None  # set when the tracking server stopped answering
        self.pending: list[str] = []

    @property
    def online(self) -> bool:
        return self.offline_reason is None

    def track(self, what: str, fn: Callable[[], Any], best_effort: bool = False):
        """Call an MLflow logging function; if the server is gone, note ``what`` as pending instead."""
        if not self.enabled:
            return None
        if self.offline_reason is not None:
            self.pending.append(what)
            return None
        try:
            return fn()
        except Exception as exc:
            if self.server_down():
                self.go_offline(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                self.pending.append(what)
                return None
            if best_effort:
                return None
            raise

    def go_offline(self, reason: str) -> None:
        if self.offline_reason is None:
            self.offline_reason = reason

    def server_down(self) -> bool:
        """Whether an HTTP tracking server stopped answering (a local store never 'goes down')."""
        if not self.uri.startswith(("http://", "https://")):
            return False
        try:
            check_store(self.uri, timeout_s=3)
        except TrackingError:
            return True
        return False

    def leave_for_upload(self, out_dir: Path, run_id: str, status: str, metrics_sent: int) -> None:
        """Write ``pending.json`` (what the server missed) and tell the user how to send it later."""
        pending = {
            "run_id": run_id,
            "tracking_uri": redact(self.uri),
            "status": status,
            "metrics_sent": metrics_sent,
            "journal": "metrics.jsonl",
            "artifacts": "artifacts",
            "reason": self.offline_reason,
            "pending": self.pending,
        }
        (out_dir / "pending.json").write_text(json.dumps(pending, indent=2))
        print(
            f"layerlab: WARNING the tracking server {redact(self.uri)} stopped answering "
            f"({self.offline_reason}). Training went on; metrics, artifacts and the model are kept in "
            f"{out_dir}. Send them when the server is back: python -m experiments.upload {out_dir}",
            flush=True,
        )
