"""The launch ledger of a sweep: every job the launcher was given, and what became of it.

Written by this project's launcher (``hydra/launcher=layerlab``, in
``hydra_plugins/layerlab_launcher``) into ``<sweep dir>/launched.json``; read
by the sweep summary, which can then list jobs that never got an MLflow run
(killed while starting, never started), and by nobody else.  Other launchers
write no ledger: the summary then lists the runs it finds.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from experiments.config.fusion import solo_jobs
from experiments.config.overrides import parse_overrides

LEDGER = "launched.json"


def write_ledger(sweep_dir: Path, jobs: dict[int, dict], hydra_overrides: list[str] = ()) -> None:
    """``jobs``: job number -> {"overrides": [...], "state": queued|running|done|failed|lost, "error": str};
    ``hydra_overrides``: the sweep's ``hydra.*`` / ``hydra/...`` overrides (the launcher), for the completing
    command."""
    path = Path(sweep_dir) / LEDGER
    tmp = path.with_suffix(".tmp")
    keep = reusable_hydra_overrides(hydra_overrides)
    tmp.write_text(
        json.dumps({"hydra_overrides": keep, "jobs": [{"job": n, **j} for n, j in sorted(jobs.items())]}, indent=1)
    )
    tmp.replace(path)


def read_ledger(sweep_dir: Path, key: str = "jobs") -> list:
    try:
        return json.loads((Path(sweep_dir) / LEDGER).read_text())[key]
    except (OSError, ValueError, KeyError):
        return []


def unstarted_rows(sweep_dir: Path, seen_jobs: set[str]) -> list[dict]:
    """Summary rows for the ledger's jobs that have no MLflow run: died while starting, or never started."""
    rows = []
    for job in read_ledger(sweep_dir):
        if job.get("state") == "done":
            continue
        lost = job.get("state") in ("lost", "failed")
        error = job.get("error") or ("" if lost else "never started: the sweep stopped before it")
        for number, overrides in solo_jobs(job.get("overrides", []), job["job"]):  # a fused job: its replicas
            if number not in seen_jobs:
                rows.append(job_row(number, "FAILED" if lost else "NOT STARTED", overrides, error))
    return rows


def job_row(job: str, status: str, overrides: list[str], error: str) -> dict:
    """A summary row for a job without an MLflow run: its number, status, overrides, error and rerun command."""
    return {
        "job": str(job),
        "status": status,
        "run_id": "",
        "overrides": " ".join(overrides),
        "val": None,
        "test": None,
        "error": error,
        "rerun": "python runner.py " + " ".join(shlex.quote(o) for o in overrides),
    }


def completing_command(sweep_overrides: list[str], launcher_overrides: list[str] = ()) -> str:
    """The one command that runs every job of the sweep that has no FINISHED run yet."""
    words = [*launcher_overrides, *sweep_overrides, "sweep.skip_finished=true"]
    return "python runner.py -m " + " ".join(shlex.quote(w) for w in words)


def sweep_hydra_overrides(sweep_dir: Path, known: list[str] | None = None) -> list[str]:
    """The sweep's own ``hydra...`` overrides (launcher and its settings): from the ledger, else ``known`` (what
    the sweep's start read), else Hydra's state (which a launcher's failure may already have cleared)."""
    if (Path(sweep_dir) / LEDGER).is_file():
        return read_ledger(sweep_dir, "hydra_overrides")
    if known is not None:
        return list(known)
    try:
        from hydra.core.hydra_config import HydraConfig

        given = [str(o) for o in (HydraConfig.get().overrides.hydra or [])]
    except ValueError:  # HydraConfig not set: not inside a Hydra run
        return []
    return reusable_hydra_overrides(given)


def reusable_hydra_overrides(hydra_overrides) -> list[str]:
    """The sweep's ``hydra`` overrides a completing command repeats: not its folders, nor its mode."""
    return [
        o.text
        for o in parse_overrides(hydra_overrides)
        if o.key not in ("hydra.sweep.dir", "hydra.run.dir", "hydra.mode")
    ]
