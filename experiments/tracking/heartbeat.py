"""A running job's heartbeat: tags on its MLflow run, so that a run whose process died can be found.

A process killed hard (SIGKILL, out of memory, a machine that went down)
cannot close its run: MLflow keeps it RUNNING forever.  While a job runs, a
daemon thread writes the time (``layerlab.heartbeat``), the host and the pid
to the run every :data:`INTERVAL_S` seconds;
:mod:`experiments.tracking.doctor` closes RUNNING runs whose heartbeat stopped.
A beat that cannot be delivered (the server is down) is skipped silently:
training never waits for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from experiments.tracking import tags

log = logging.getLogger(__name__)

INTERVAL_S = 30.0


def process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot (Linux), "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def identity() -> dict[str, str]:
    """The tags that say which process on which machine owns a run."""
    pid = os.getpid()
    return {tags.HOST: socket.gethostname(), tags.PID: str(pid), tags.PID_START: process_start(pid)}


def beat_tags(with_identity: bool) -> list:
    """The tags of one beat: the time, and with ``with_identity`` the host, pid and pid start that own the run."""
    from mlflow.entities import RunTag

    beat = {tags.HEARTBEAT: f"{time.time():.0f}", **(identity() if with_identity else {})}
    return [RunTag(k, v) for k, v in beat.items()]


def claim(client, run_id: str) -> None:
    """Write this process's identity and a fresh beat to ``run_id`` now, and wait until they are stored.

    Whoever makes a closed run RUNNING again does this *first*: a lost-run check
    (:mod:`experiments.tracking.doctor`) that looks at the run in between then
    sees a living owner, never the identity of the process that ran it before.
    """
    client.log_batch(run_id, tags=beat_tags(with_identity=True), synchronous=True)


class Heartbeat:
    """Writes the run's heartbeat now, then every ``interval_s`` seconds until :meth:`stop`.

    Args:
        uri: the tracking URI.
        run_id: the RUNNING run.
        interval_s: seconds between two beats (at most :data:`INTERVAL_S` is the promise of the docs).
    """

    def __init__(self, uri: str, run_id: str, interval_s: float = INTERVAL_S):
        self.uri, self.run_id, self.interval_s = uri, run_id, float(interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def start(self) -> Heartbeat:
        import mlflow

        self._client = mlflow.MlflowClient(self.uri)
        self._thread = threading.Thread(target=self._loop, name="layerlab-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        self._beat(first=True)  # here, not in start(): a server that stalls never delays training
        while not self._stop.wait(self.interval_s):
            self._beat()

    def _beat(self, first: bool = False) -> None:
        try:
            self._client.log_batch(self.run_id, tags=beat_tags(with_identity=first), synchronous=True)
            self.beats += 1
        except Exception as exc:  # the server is away: the metric sink and the offline channel deal with that
            log.debug("heartbeat of run %s not sent: %r", self.run_id, exc)
