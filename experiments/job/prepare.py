"""Everything a job needs before training: registry modules, data, the built model, and their fit.

Nothing here logs; a dry run stops right after :func:`prepare`.
"""

from __future__ import annotations

import layers
from experiments.config.schema import JobConfig
from experiments.data import load_dataset, make_tf_dataset
from experiments.data.splits import DataSplits
from experiments.errors import ConfigError, DataError
from experiments.models import build_model


def prepare(job: JobConfig):
    """Load the registry modules and the data, build the model, check that they fit; nothing is logged.

    Returns:
        (data, model): the dataset splits and the built (uncompiled) model.
    """
    load_registry_modules(job)
    data = load_dataset(job.dataset, job.seed)
    model = build_model(job.model_spec, input_shapes={"input": data.input_shape, **_input_names(job, data)})
    check_data_fits_model(data, model, job)
    return data, model


def load_registry_modules(job: JobConfig) -> None:
    """Import the modules of ``registry.modules`` so their layers resolve by name."""
    try:
        layers.load_modules(list(job.registry.modules))
    except KeyError as exc:
        raise ConfigError(str(exc), path="registry.modules",
                          fix="remove the module from registry.modules or make it importable") from None


def _input_names(job: JobConfig, data) -> dict:
    """Every named input of the graph form takes the dataset's shape unless it gives its own."""
    inputs = job.model_spec.get("inputs")
    return {str(k): data.input_shape for k in inputs} if isinstance(inputs, dict) else {}


def check_data_fits_model(data, model, job: JobConfig) -> None:
    """Images must have the model's input shape; labels must fit its output and loss."""
    import numpy as np

    expected = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) == 1 and tuple(data.input_shape) != expected and None not in expected:
        raise DataError(
            f"the dataset {data.name!r} has images of shape {tuple(data.input_shape)} but the model "
            f"{job.model.name!r} takes {expected}", path="model.input.shape", value=list(expected),
            fix=f"use a dataset of that shape, or set the model's input shape to {list(data.input_shape)} "
                "(or null to take it from the dataset)")
    out_units = model.outputs[0].shape[-1]
    labels = np.concatenate([data.train[1], data.val[1], data.test[1]])
    lo, hi = int(labels.min()), int(labels.max())
    loss = job.training.loss
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


def split_datasets(job: JobConfig, data: DataSplits) -> dict:
    """The ``tf.data`` pipelines of the three splits: train shuffled by ``training.shuffle``, val and test in order."""
    bs, seed = job.training.batch_size, job.seed
    return {"train": make_tf_dataset(*data.train, bs, shuffle=job.training.shuffle, seed=seed),
            "val": make_tf_dataset(*data.val, bs, shuffle=False, seed=seed),
            "test": make_tf_dataset(*data.test, bs, shuffle=False, seed=seed)}
