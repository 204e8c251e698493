"""One Hydra job, start to end: ``run_job(cfg)`` is what ``runner.py`` calls for every job.

It validates the config against the schema, then lists the registry, makes
a dry run (build + summary, nothing logged) or hands the job to
:class:`~experiments.job.tracked.TrackedJob`, which owns the MLflow run.
User errors come out as one paragraph (:class:`~experiments.errors.LayerlabError`).
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

import layers
from experiments.config.access import resolved_container
from experiments.config.schema import validate
from experiments.job.context import hydra_context
from experiments.job.prepare import prepare
from experiments.job.result import JobResult
from experiments.job.tracked import TrackedJob
from experiments.models import count_params, summary_text
from experiments.training.compile import compile_model
from experiments.training.interrupts import graceful_interrupts


def list_registry() -> str:
    def origin(name: str) -> str:
        return getattr(layers.registry.get(name), "__module__", "")

    names = layers.registry.names()
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


def dry_run(cfg: DictConfig) -> JobResult:
    """Build and compile the model, print the config and the summary; nothing is trained or logged."""
    data, model = prepare(cfg)
    compile_model(model, cfg)  # checks optimizer, loss and metric names too
    print(OmegaConf.to_yaml(resolved_container(cfg), sort_keys=False), end="")
    print(summary_text(model), end="")
    counts = count_params(model)
    print(f"dry run: {cfg.model.name} builds with {counts['total']:,} params "
          f"({counts['trainable']:,} trainable); data {data.name} {tuple(data.input_shape)}, "
          f"{len(data.train[1])}/{len(data.val[1])}/{len(data.test[1])} train/val/test. Nothing trained or logged.")
    return JobResult(status="DRY_RUN")


def run_job(cfg: DictConfig) -> JobResult:
    """Run one job. Raises :class:`LayerlabError` (or KeyboardInterrupt) on failure."""
    validate(cfg)
    if cfg.list_layers:
        print(list_registry())
        return JobResult(status="LISTED")
    if cfg.dry_run:
        return dry_run(cfg)
    with graceful_interrupts():
        return TrackedJob(cfg, hydra_context()).run()
