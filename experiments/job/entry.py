"""One Hydra job, start to end: ``run_job(cfg)`` is what ``runner.py`` calls for every job.

It validates the config against the schema, then lists the registry, makes
a dry run (build + summary, nothing logged: :mod:`experiments.job.dry_run`) or hands the job to
:class:`~experiments.job.tracked.TrackedJob`, which owns the MLflow run.
User errors come out as one paragraph (:class:`~experiments.errors.LayerlabError`).
"""

from __future__ import annotations

from omegaconf import DictConfig

import layers
from experiments.config.schema import run_mode, validate
from experiments.job.context import hydra_context
from experiments.job.dry_run import dry_run
from experiments.job.result import JobResult
from experiments.job.tracked import TrackedJob
from experiments.training.interrupts import graceful_interrupts


def list_registry() -> str:
    def origin(name: str) -> str:
        return getattr(layers.layer_registry.get(name), "__module__", "")

    names = layers.layer_registry.names()
    project = [n for n in names if origin(n).startswith("layers.")]
    user = [n for n in names if not origin(n).startswith(("layers.", "keras"))]
    from_keras = [n for n in names if origin(n).startswith("keras")]
    functions = [f"{n} (alias {', '.join(layers.functions.aliases_of(n))})" if layers.functions.aliases_of(n) else n
                 for n in layers.functions.names()]
    return "\n".join([
        "Layers (type: in model YAML):",
        "  project / user: " + ", ".join(project + user),
        "  keras:          " + ", ".join(from_keras),
        "Functions (Lambda `function:` and `activation:`): " + ", ".join(functions)
        + ", and every Keras activation (relu, elu, gelu, softmax, ...)",
    ])


def run_job(cfg: DictConfig) -> JobResult:
    """Run one job. Raises :class:`LayerlabError` (or KeyboardInterrupt) on failure."""
    ctx = hydra_context()
    mode = run_mode(cfg)
    if mode == "dry_run":
        return dry_run(cfg, ctx)
    job = validate(cfg)  # below this line the job reads `job`, the typed config; `cfg` is only logged
    if mode == "list":
        print(list_registry())
        return JobResult(status="LISTED")
    with graceful_interrupts():
        return TrackedJob(cfg, ctx, job).run()
