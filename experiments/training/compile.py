"""``model.compile`` from the config: the optimizer, loss and metrics, checked by name."""

from __future__ import annotations

import difflib

import keras

from experiments.adapters.keras_internals import use_fused_adam_kernel
from experiments.config.schema import JobConfig, OptimizerSchema
from experiments.errors import ConfigError


def make_optimizer(optimizer: OptimizerSchema) -> keras.optimizers.Optimizer:
    """The optimizer named by ``optimizer.name`` with its learning rate and args."""
    name = optimizer.name
    args = dict(optimizer.args or {})
    known = {
        n: getattr(keras.optimizers, n)
        for n in dir(keras.optimizers)
        if isinstance(getattr(keras.optimizers, n), type)
        and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)
    }
    lookup = {n.lower(): n for n in known}
    if name.lower() not in lookup:
        close = difflib.get_close_matches(name.lower(), list(lookup), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(lookup[c]) for c in close)}?" if close else ""
        raise ConfigError(
            f"no Keras optimizer of that name{hint}",
            path="optimizer.name",
            value=name,
            fix=f"use one of {', '.join(sorted(k for k in known if k not in ('Optimizer', 'LossScaleOptimizer')))}",
        )
    try:
        return known[lookup[name.lower()]](learning_rate=float(optimizer.learning_rate), **args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"the optimizer rejected its arguments ({exc})",
            path="optimizer.args",
            value=args,
            fix="check the argument names against the Keras optimizer's documentation",
        ) from None


def compile_model(model: keras.Model, job: JobConfig) -> None:
    """``model.compile`` with the optimizer, loss and metrics of the job's typed config."""
    loss = job.training.loss
    try:
        keras.losses.get(loss)
    except (ValueError, TypeError):
        raise ConfigError(
            "is not a Keras loss",
            path="training.loss",
            value=loss,
            fix="use e.g. sparse_categorical_crossentropy (integer labels) or binary_crossentropy",
        ) from None
    metrics = [str(m) for m in job.training.metrics]
    for i, m in enumerate(metrics):
        try:
            keras.metrics.get(m)
        except (ValueError, TypeError):
            raise ConfigError(
                "is not a Keras metric",
                path=f"training.metrics.{i}",
                value=m,
                fix="use e.g. sparse_categorical_accuracy or accuracy",
            ) from None
    model.compile(
        optimizer=make_optimizer(job.optimizer),
        loss=loss,
        metrics=metrics,
        jit_compile=job.training.jit_compile,
        # Several steps per graph call: Python, callbacks and the metrics' host read-out once per call.
        steps_per_execution=job.training.steps_per_execution,
    )
    use_fused_adam_kernel(model.optimizer)  # Adam's update in one kernel per variable (TensorFlow)
