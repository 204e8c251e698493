"""One Hydra job, start to end: ``run_job(cfg)`` is what ``runner.py`` calls for every job.

It validates the config against the schema, then lists the registry, makes
a dry run (build + summary, nothing logged: :mod:`experiments.job.dry_run`) or hands the job to
:class:`~experiments.job.tracked.TrackedJob` (a fused group of seeds, set by the sweeper, to
:func:`~experiments.job.fused_job.run_fused`: one fit, one run per seed); each MLflow run is a
:class:`~experiments.job.run_record.RunRecord`.
User errors come out as one paragraph (:class:`~experiments.errors.LayerlabError`).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from experiments.config.schema import JobConfig, run_mode, validate
from experiments.job.context import hydra_context
from experiments.job.dry_run import dry_run
from experiments.job.fused_job import run_fused
from experiments.job.listing import list_registry
from experiments.job.prepare import load_registry_modules
from experiments.job.result import JobResult
from experiments.job.tracked import TrackedJob
from experiments.training.interrupts import graceful_interrupts
from experiments.training.progress_file import write_status


def run_job(cfg: DictConfig, job: JobConfig | None = None) -> JobResult:
    """Run one job. Raises :class:`LayerlabError` (or KeyboardInterrupt) on failure.

    Args:
        cfg: the composed config (logged as it is).
        job: ``cfg`` already validated (:func:`~experiments.config.schema.validate`), or None to validate here.
    """
    ctx = hydra_context()
    mode = run_mode(cfg)
    if mode == "dry_run":
        return dry_run(cfg, ctx)
    # below this line the job reads `job`, the typed config; `cfg` is only logged
    job = validate(cfg) if job is None else job
    if mode == "list":  # list_layers: true, or a name pattern ('*Dense*')
        load_registry_modules(job)
        print(list_registry(None if job.list_layers is True else str(job.list_layers)))
        return JobResult(status="LISTED")
    try:
        with graceful_interrupts():
            if job.sweep.fused_seeds:  # set by the sweeper (sweep.fuse_replicates=true): several seeds, one fit
                return run_fused(cfg, ctx, job)
            if job.sweep.fuse_replicates and ctx.in_sweep:
                print(
                    "layerlab: note: sweep.fuse_replicates=true, but this sweep's sweeper did not group the "
                    "replicates (the project's default sweeper does; a dry run does not fuse); this job trains alone",
                    flush=True,
                )
            return TrackedJob(cfg, ctx, job).run()
    except KeyboardInterrupt as exc:
        _publish_killed(ctx, exc)
        raise


def _publish_killed(ctx, exc: BaseException) -> None:
    """Ctrl-C/SIGTERM: say KILLED in the job's sweep status file. Hydra calls no ``on_job_end`` for it, so the file
    would stay "running", and once a launcher worker's process exits the sweep's display would call the job LOST
    ("killed, out of memory?")."""
    if ctx.progress_path is None:
        return
    try:
        write_status(ctx.progress_path, status="KILLED", error=f"interrupted ({exc or 'Ctrl-C'})")
    except OSError as err:  # never hide the interruption itself
        print(f"layerlab: could not write the job's status file: {err}", file=sys.stderr, flush=True)
