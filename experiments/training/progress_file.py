"""What a sweep's job publishes about itself while it runs: one small JSON status file per job.

A sweep's jobs may run in other processes (joblib/loky or layerlab workers,
Ray, SLURM), so the sweep's live display (:mod:`experiments.sweeps.progress.display`)
reads their progress from files in the sweep folder instead of from memory:
``<sweep dir>/.progress/<job number>.json``.  The job writes it when it
starts and ends (the sweep callback's ``on_job_start`` / ``on_job_end``, in
the job's own process) and after every epoch (the Keras callback
:class:`experiments.training.callbacks.ProgressFile`).  No Keras here: the
sweep's parent process imports this module before TensorFlow loads.  Each
write replaces the file atomically (write a temporary file, then
``os.replace``), so a reader never sees half a file.

Fields: ``job``, ``pid``, ``host``, ``overrides`` (the job's, as typed),
``status`` (``running``, then ``FINISHED``, ``FAILED``, ``SKIPPED``, ...),
``epoch``/``epochs``, ``metric`` and ``value`` (the last validation value of
the judged metric), ``pruned`` (an Optuna trial stopped by its pruner),
``error`` (first line), ``started``/``updated`` (Unix time).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

PROGRESS_DIR = ".progress"
RUNNING = "running"


def status_path(sweep_dir: str | Path, job_num: int) -> Path:
    """Where job ``job_num`` of the sweep in ``sweep_dir`` publishes its status."""
    return Path(sweep_dir) / PROGRESS_DIR / f"{int(job_num)}.json"


def read_status(path: Path) -> dict:
    """One job's status; ``{}`` when the file is missing or not (yet) JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(path: Path, fresh: bool = False, **fields) -> dict:
    """Merge ``fields`` into the job's status file (``fresh``: start a new one), replacing it atomically;
    returns what was written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    status = {**({} if fresh else read_status(path)), **fields, "updated": time.time()}
    status.setdefault("started", status["updated"])
    status.setdefault("pid", os.getpid())
    status.setdefault("host", socket.gethostname())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(status, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return status


def read_statuses(sweep_dir: str | Path) -> list[dict]:
    """Every job's status in the sweep folder, by job number (files being written are skipped)."""
    folder = Path(sweep_dir) / PROGRESS_DIR
    if not folder.is_dir():
        return []
    found = [read_status(p) for p in folder.glob("*.json")]
    return sorted((s for s in found if "job" in s), key=lambda s: int(s["job"]))
