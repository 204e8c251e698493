"""The outcome records a dry-run sweep's jobs leave in their Hydra output folders (no heavy imports:
the launching process reads them back without loading TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.job.context import JobContext

RECORD = "dry_run.json"


def write_record(ctx: JobContext, outcome: dict) -> None:
    if ctx.in_sweep and ctx.output_dir:
        record = {"job": ctx.job_num, "overrides": ctx.overrides, **outcome}
        (Path(ctx.output_dir) / RECORD).write_text(json.dumps(record))


def read_records(sweep_dir: Path) -> tuple[list[dict], list[str]]:
    """The records of a dry-run sweep's jobs, and the job folders that left none (the job died)."""
    records, silent = [], []
    for folder in sorted(
        (p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()), key=lambda p: (len(p.name), p.name)
    ):
        file = folder / RECORD
        if file.is_file():
            records.append(json.loads(file.read_text()))
        else:
            silent.append(folder.name)
    return records, silent
