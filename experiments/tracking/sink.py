"""Metric logging off the training thread, with retries and a local journal.

Every epoch's metrics are appended to a local JSON-lines journal first (cheap,
never fails), then sent to MLflow by a background thread.  If the tracking
server is down, sending is retried with back-off; if it stays down past the
deadline the journal is what survives, and ``python -m experiments.upload``
sends it later.  Training never waits for the network.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path


class MetricSink:
    """Queue of ``(metrics, step)`` batches sent to one MLflow run.

    Args:
        client: an ``mlflow.MlflowClient`` for the run's tracking URI.
        run_id: the run the metrics belong to.
        journal: path of the local JSON-lines journal (created on demand).
        retry_for_s: how long to keep retrying one batch before giving up on
            the server (the journal keeps everything either way).
    """

    def __init__(self, client, run_id: str, journal: Path, retry_for_s: float = 30.0):
        self.client = client
        self.run_id = run_id
        self.journal = Path(journal)
        self.retry_for_s = retry_for_s
        self.failed_batches = 0
        self.sent = 0  # journal lines delivered, in order: what an upload later skips
        self.offline = False  # once the server stayed down past the deadline, stop trying
        self.last_error: str | None = None
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._worker, name="layerlab-metrics", daemon=True)
        self._thread.start()

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        """Record one step's metrics (returns at once)."""
        ts = int(time.time() * 1000)
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("a") as fh:
            fh.write(json.dumps({"step": step, "timestamp": ts, "metrics": metrics}) + "\n")
        self._queue.put((metrics, step, ts))

    def _worker(self) -> None:
        from mlflow.entities import Metric

        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            metrics, step, ts = item
            if self.offline:  # keep order: once one batch is missing, the rest go through the journal
                self.failed_batches += 1
                self._queue.task_done()
                continue
            batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
            deadline = time.monotonic() + self.retry_for_s
            delay = 0.5
            while True:
                try:
                    self.client.log_batch(self.run_id, metrics=batch)
                    self.sent += 1
                    break
                except Exception as exc:  # server down, network error, store locked
                    self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    if time.monotonic() > deadline:
                        self.failed_batches += 1
                        self.offline = True
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 8.0)
            self._queue.task_done()

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop; True when every batch reached MLflow."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive() and self.failed_batches == 0
