"""``dry_run=true``: compose, validate, load, build and compile; print; never log.

In a sweep (``python runner.py -m ... dry_run=true``, the way to check every
config of a sweep before launching it) each job also leaves a small record
in its Hydra output folder, and the sweep's end reads them back
(:func:`read_records`) for a one-line summary: how many configs were
composed, how many are valid, which failed and why (:mod:`experiments.job.records`).
Nothing reaches MLflow.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.config.access import resolved_container
from experiments.config.schema import validate
from experiments.errors import LayerlabError
from experiments.job.context import JobContext
from experiments.job.prepare import prepare
from experiments.job.records import write_record
from experiments.job.result import JobResult
from experiments.models import count_params, summary_text
from experiments.models.picture import PICTURE, draw_model
from experiments.training.compile import compile_model


def dry_run(cfg: DictConfig, ctx: JobContext) -> JobResult:
    """Check one config as far as it goes without training; record the outcome in a sweep.

    Args:
        cfg: the raw composed config (validated here, so that a failure is recorded; printed resolved).
        ctx: the job's Hydra context.
    """
    try:
        job = validate(cfg)
        data, model = prepare(job)
        compile_model(model, job)  # checks optimizer, loss and metric names too
    except LayerlabError as exc:
        write_record(ctx, {"valid": False, "error": str(exc)})
        raise
    print(OmegaConf.to_yaml(resolved_container(cfg), sort_keys=False), end="")
    print(summary_text(model), end="")
    picture = draw_model(model, Path(ctx.output_dir) / PICTURE) if ctx.output_dir else None
    if picture is not None:
        print(f"model picture: {picture}")
    counts = count_params(model)
    print(
        f"dry run: {job.model.name} builds with {counts['total']:,} params "
        f"({counts['trainable']:,} trainable); data {data.name} {tuple(data.input_shape)}, "
        f"{len(data.train[1])}/{len(data.val[1])}/{len(data.test[1])} train/val/test. Nothing trained or logged."
    )
    write_record(ctx, {"valid": True, "params": counts["total"]})
    return JobResult(status="DRY_RUN")
