"""One batch of jobs handed to the configured launcher, with a launcher's crash reported as one paragraph.

Hydra's stock joblib launcher loses the whole batch when one of its workers
dies (killed, out of memory): joblib raises ``TerminatedWorkerError`` out of
``launch``, and Hydra would print it as a traceback. The sweepers of this
project launch through :func:`launch_batch`, which turns that into a
``CompactHydraException`` (Hydra prints its message only, then exits 1);
the sweep's summary, with the jobs that finished and the command that
completes the sweep, follows as for any failed sweep
(:func:`experiments.sweeps.callback.finalize_active`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.errors import CompactHydraException
from joblib.externals.loky.process_executor import TerminatedWorkerError

from experiments.job import background_close


class LauncherCrashed(CompactHydraException):
    """A launcher lost its batch (a dead worker); the message is the whole report."""


class OutputsNotWritten(CompactHydraException):
    """Runs of the batch trained, but their outputs, written while the next job trained, failed."""


def launch_batch(launcher: Any, batch: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
    """``launcher.launch(batch, initial_job_idx)``; a dead joblib worker becomes :class:`LauncherCrashed`.

    Jobs the launcher runs in this process close their FINISHED fused replicas while the next job trains; the
    batch returns once every run is closed (:mod:`experiments.job.background_close`).
    """
    try:
        with background_close.overlap():
            return launcher.launch(batch, initial_job_idx=initial_job_idx)
    except background_close.ClosesFailed as exc:
        raise OutputsNotWritten(str(exc)) from None
    except TerminatedWorkerError as exc:
        raise LauncherCrashed(
            "layerlab: error: a worker process of the joblib launcher died (killed, or out of memory: "
            f"{_reason(exc)}), and joblib stops the whole batch with it: the jobs it was running end KILLED and "
            "the jobs not started yet did not run. The sweep's summary below lists what finished and the command "
            "that completes the sweep (it runs only the jobs without a FINISHED run). hydra/launcher=layerlab "
            "survives a dead worker: it costs one FAILED job, and the others go on."
        ) from None


def _reason(exc: TerminatedWorkerError) -> str:
    """joblib's own words on the exit code (``... exit codes: {SIGKILL(-9)}``), else its class name."""
    text = str(exc)
    start = text.find("exit code")
    return text[start:].split("\n")[0].rstrip(". ") if start >= 0 else type(exc).__name__
