"""What the sweep's progress display says, from the jobs' status files: counts, ETA, one line per job.

Pure functions of the statuses (:mod:`experiments.training.progress_file`)
and the clock, so that the plain renderer is tested on real files without a
terminal; :mod:`experiments.sweeps.progress.display` polls and draws.
"""

from __future__ import annotations

import os
import socket
import textwrap
from dataclasses import dataclass, field

from experiments.config.fusion import group_overrides
from experiments.job.naming import child_run_name
from experiments.training.progress_file import RUNNING

DONE = ("FINISHED", "SKIPPED", "COMPLETED")  # COMPLETED: a job that returned no run (a dry run)
LOST = "LOST"  # still "running" in its file, but its process is gone (SIGKILL, out of memory)


@dataclass
class Board:
    """The sweep at one moment.

    Args:
        jobs: every job's status (dicts of the status files), by job number.
        planned: the jobs the sweep will run in all, when known.
        elapsed_s: seconds since the sweep started.
        names: job number -> its name (what differs from the other jobs).
    """

    jobs: list[dict]
    planned: int | None
    elapsed_s: float
    names: dict[int, str] = field(default_factory=dict)

    @property
    def running(self) -> list[dict]:
        return [j for j in self.jobs if state(j) == RUNNING]

    @property
    def done(self) -> list[dict]:
        return [j for j in self.jobs if state(j) in DONE]

    @property
    def failed(self) -> list[dict]:
        return [j for j in self.jobs if state(j) not in (RUNNING, *DONE)]

    @property
    def pruned(self) -> int:
        return sum(1 for j in self.done if j.get("pruned"))

    @property
    def total(self) -> int | None:
        return None if self.planned is None else max(self.planned, len(self.jobs))

    @property
    def left(self) -> int | None:
        """Jobs not started yet (None when the sweep's size is not known)."""
        return None if self.total is None else self.total - len(self.jobs)

    def eta_s(self) -> float | None:
        """Seconds left at the pace so far: elapsed time per finished job (running ones counted by the
        share of their epochs done) times the work left; None before a job finished or without a size."""
        finished = len(self.done) + len(self.failed)
        if self.total is None or finished == 0:
            return None
        units = finished + sum(min(j.get("epoch", 0) / j["epochs"], 1.0) for j in self.running if j.get("epochs"))
        return self.elapsed_s * max(self.total - units, 0.0) / units


def state(job: dict) -> str:
    """The job's status: ``running``, ``LOST`` (its process died on this host), or its final status."""
    status = str(job.get("status") or RUNNING)
    if status == RUNNING and job.get("host") == socket.gethostname() and not _alive(job.get("pid")):
        return LOST
    return status


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # another user's process with that pid: alive
        return True
    return True


def names(jobs: list[dict], sweep_overrides, replicate_key: str = "seed") -> dict[int, str]:
    """Job number -> what differs (``activation=abs seed=1``), as the MLflow runs are named; a fused job
    (``sweep.fuse_replicates``) by its group's seeds (``activation=abs seed=0,1,2``), not the sweeper's fused keys."""
    return {
        int(j["job"]): child_run_name(group_overrides(j.get("overrides", [])), sweep_overrides, replicate_key)
        or f"#{j['job']}"
        for j in jobs
    }


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def value_text(job: dict) -> str:
    """``val_accuracy=0.9123`` (the judged metric's last validation value), or ``""``."""
    value = job.get("value")
    return f"{job.get('metric', 'value')}={value:.4f}" if isinstance(value, (int, float)) else ""


def counts(board: Board) -> str:
    """``3 done (1 pruned), 1 running, 0 failed, 4 left, ETA 1m20s``."""
    pruned = f" ({board.pruned} pruned)" if board.pruned else ""
    left = "?" if board.left is None else board.left
    return (
        f"{len(board.done)} done{pruned}, {len(board.running)} running, {len(board.failed)} failed, "
        f"{left} left, ETA {duration(board.eta_s())}"
    )


def result_line(job: dict, board: Board, width: int | None = None) -> str:
    """The one line of a finished job: ``layerlab: job 2 FINISHED activation=abs seed=1 val_acc=0.9123 (...)``.

    ``width``: a terminal's columns. A longer line leaves out the counts (the live panel shows them) and, if
    still too long, wraps at spaces onto indented lines, never inside a word.
    """
    status = state(job) + (" (pruned)" if job.get("pruned") else "")
    took = duration(job["updated"] - job["started"]) if "updated" in job and "started" in job else "?"
    parts = [
        f"layerlab: job {job['job']} {status}",
        board.names.get(int(job["job"]), ""),
        value_text(job),
        f"in {took}",
    ]
    error = (str(job.get("error") or "").strip().splitlines() or [""])[0]
    if state(job) == LOST:
        error = "its process is gone (killed, out of memory?)"
    text = " ".join(p for p in parts if p) + (f": {error}" if error and state(job) not in DONE else "")
    line = f"{text} | {counts(board)}"
    if width is None or len(line) <= width:
        return line
    return "\n".join(
        textwrap.wrap(text, width, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    )


def epoch_text(job: dict) -> str:
    """``3/10``: the epochs a running job has finished (``starting`` before it trains)."""
    if not job.get("epochs"):
        return "starting"
    return f"{job.get('epoch', 0)}/{job['epochs']}"
