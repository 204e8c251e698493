"""One Hydra job, start to end: ``run_job(cfg)`` is what ``runner.py`` calls for every job.

It validates the config against the schema, then lists the registry, makes
a dry run (build + summary, nothing logged: :mod:`experiments.job.dry_run`) or hands the job to
:class:`~experiments.job.tracked.TrackedJob`, which owns the MLflow run.
User errors come out as one paragraph (:class:`~experiments.errors.LayerlabError`).
"""

from __future__ import annotations

from omegaconf import DictConfig

from experiments.config.access import select
from experiments.config.schema import validate
from experiments.job.context import hydra_context
from experiments.job.dry_run import dry_run
from experiments.job.listing import list_registry
from experiments.job.prepare import load_registry_modules
from experiments.job.result import JobResult
from experiments.job.tracked import TrackedJob
from experiments.training.interrupts import graceful_interrupts


def run_job(cfg: DictConfig) -> JobResult:
    """Run one job. Raises :class:`LayerlabError` (or KeyboardInterrupt) on failure."""
    ctx = hydra_context()
    if select(cfg, "dry_run", False) is True and not select(cfg, "list_layers", False):
        return dry_run(cfg, ctx)
    validate(cfg)
    if cfg.list_layers:  # true, or a name pattern ('*Dense*')
        load_registry_modules(cfg)
        print(list_registry(None if cfg.list_layers is True else str(cfg.list_layers)))
        return JobResult(status="LISTED")
    with graceful_interrupts():
        return TrackedJob(cfg, ctx).run()
