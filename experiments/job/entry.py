"""One Hydra job, start to end: validate, load data, build, train, track.

``run_job(cfg)`` is what ``runner.py`` calls for every job of a run or a
sweep.  User errors come out as one paragraph (``LayerlabError``), and the
MLflow run of the job always ends FINISHED, FAILED or KILLED, never RUNNING.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.tracking import store as tracking
from experiments.config.schema import resolved_container, select, validate
from experiments.errors import DataError

TAG = tracking.TAG_PREFIX


@dataclass
class JobResult:
    """What a finished job reports back (and prints as its last line)."""

    status: str
    run_id: str | None = None
    experiment_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (a preempted node, ``kill``), raised at a batch boundary."""


class StopRequest:
    """The first SIGINT/SIGTERM only *requests* a stop; training raises at the next batch.

    Raising from the signal handler itself could land between the end-of-epoch
    checkpoint and the metric log of that epoch; stopping at a batch boundary
    keeps them consistent, so a resumed run neither repeats nor skips a step.
    A second signal stops at once.
    """

    signum: int | None = None

    @classmethod
    def check(cls) -> None:
        if cls.signum is not None:
            raise Interrupted(f"signal {cls.signum}")


@contextmanager
def graceful_interrupts():
    """Route SIGINT/SIGTERM to :class:`StopRequest` for the duration of a job."""
    def handler(signum, frame):
        if StopRequest.signum is not None:
            raise Interrupted(f"signal {signum} (second)")
        StopRequest.signum = signum
        print(f"layerlab: signal {signum} received: stopping at the next batch (again to stop at once)",
              file=sys.stderr, flush=True)

    StopRequest.signum = None
    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (some launchers): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if StopRequest.signum is not None:  # arrived after training: still an interruption
            StopRequest.check()


def hydra_context() -> dict[str, Any]:
    """Output dir, overrides as typed, job number and sweep dir of the current Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
    except Exception:  # called outside Hydra (tests, notebooks)
        return {"output_dir": None, "overrides": [], "job_num": None, "mode": "RUN", "sweep_dir": None}
    mode = str(hc.mode).split(".")[-1] if hc.mode is not None else "RUN"
    return {
        "output_dir": hc.runtime.output_dir,
        "overrides": list(hc.overrides.task),
        "job_num": hc.job.num if mode == "MULTIRUN" else None,
        "mode": mode,
        "sweep_dir": hc.sweep.dir if mode == "MULTIRUN" else None,
    }


def list_registry() -> str:
    import layers

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


def prepare(cfg: DictConfig):
    """Validate, load registry modules and data, build the model; nothing is logged yet.

    Returns:
        (data, model): the dataset splits and the built (uncompiled) model.
    """
    import layers
    from experiments.models.builder import build_model
    from experiments.data.loading import load_dataset
    from experiments.errors import ConfigError

    try:
        layers.load_modules(select(cfg, "registry.modules", []) or [])
    except KeyError as exc:
        raise ConfigError(str(exc), path="registry.modules",
                          fix="remove the module from registry.modules or make it importable") from None
    data = load_dataset(cfg.dataset, int(cfg.seed))
    model = build_model(cfg.model, input_shapes={"input": data.input_shape, **_input_names(cfg, data)})
    check_data_fits_model(data, model, cfg)
    return data, model


def _input_names(cfg, data) -> dict:
    inputs = select(cfg, "model.inputs", None)
    return {str(k): data.input_shape for k in inputs} if isinstance(inputs, DictConfig) else {}


def check_data_fits_model(data, model, cfg) -> None:
    """Images must have the model's input shape; labels must fit its output and loss."""
    import numpy as np

    expected = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) == 1 and tuple(data.input_shape) != expected and None not in expected:
        raise DataError(
            f"the dataset {data.name!r} has images of shape {tuple(data.input_shape)} but the model "
            f"{cfg.model.name!r} takes {expected}", path="model.input.shape", value=list(expected),
            fix=f"use a dataset of that shape, or set the model's input shape to {list(data.input_shape)} "
                "(or null to take it from the dataset)")
    out_units = model.outputs[0].shape[-1]
    labels = np.concatenate([data.train[1], data.val[1], data.test[1]])
    lo, hi = int(labels.min()), int(labels.max())
    loss = str(cfg.training.loss)
    if "sparse_categorical" in loss and (lo < 0 or hi >= out_units):
        raise DataError(
            f"labels go from {lo} to {hi} but the model's output has {out_units} unit(s), so "
            f"{loss} cannot score them", path="training.loss", value=loss,
            fix=f"give the last layer {hi + 1} units (softmax), or use a dataset with at most {out_units} classes")
    if "binary" in loss and (out_units != 1 or lo < 0 or hi > 1):
        raise DataError(
            f"{loss} needs one sigmoid output and labels 0/1; the model has {out_units} output unit(s) and the "
            f"labels go from {lo} to {hi}", path="training.loss", value=loss,
            fix="use sparse_categorical_crossentropy with a softmax output for several classes, or a two-class dataset")


def print_config(cfg: DictConfig) -> None:
    print(OmegaConf.to_yaml(resolved_container(cfg), sort_keys=False), end="")


def run_job(cfg: DictConfig) -> JobResult:
    """Run one job. Raises :class:`LayerlabError` (or KeyboardInterrupt) on failure."""
    ctx = hydra_context()
    validate(cfg)
    if cfg.list_layers:
        print(list_registry())
        return JobResult(status="LISTED")
    if cfg.dry_run:
        from experiments.models.builder import count_params, summary_text

        from experiments.training.fit import compile_model

        data, model = prepare(cfg)
        compile_model(model, cfg)  # checks optimizer, loss and metric names too
        print_config(cfg)
        print(summary_text(model), end="")
        counts = count_params(model)
        print(f"dry run: {cfg.model.name} builds with {counts['total']:,} params "
              f"({counts['trainable']:,} trainable); data {data.name} {tuple(data.input_shape)}, "
              f"{len(data.train[1])}/{len(data.val[1])}/{len(data.test[1])} train/val/test. Nothing trained or logged.")
        return JobResult(status="DRY_RUN")

    from experiments.job.tracked import TrackedJob

    with graceful_interrupts():
        return TrackedJob(cfg, ctx).run()
