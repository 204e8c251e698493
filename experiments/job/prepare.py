"""Everything a job needs before training: registry modules, data, the built model, and their fit.

Nothing here logs; a dry run stops right after :func:`prepare`.
"""

from __future__ import annotations

import layers
from experiments.config.schema import JobConfig
from experiments.data import load_dataset
from experiments.errors import ConfigError, DataError
from experiments.models import build_model


def prepare(job: JobConfig, data=None):
    """Load the registry modules and the data, build the model, check that they fit; nothing is logged.

    Args:
        job: the typed config.
        data: the splits :func:`load_data` already returned (a tracked job loads them before its run exists),
            or None to load them here.

    Returns:
        (data, model): the dataset splits and the built (uncompiled) model.
    """
    if data is None:
        data = load_data(job)
    spec = output_from_data(job.model_spec, data, job.training.loss)
    model = build_model(spec, input_shapes={"input": data.input_shape, **_input_names(job, data)})
    check_data_fits_model(data, model, job)
    if data.target_scale is not None:
        model = in_target_units(model, *data.target_scale)
    return data, model


def load_data(job: JobConfig):
    """The registry modules imported, the dataset loaded and split, its task checked against the loss.

    A tracked job calls this before it creates its MLflow run, so a bad dataset (a missing folder, a broken image,
    a NaN in a table) stops with its message and leaves no half-logged run behind.
    """
    load_registry_modules(job)
    data = load_dataset(job.dataset, job.seed)
    check_task_fits_loss(data, job)
    return data


_CLASSIFICATION_LOSSES = ("crossentropy", "hinge", "kl_divergence", "poisson_nll")


def check_task_fits_loss(data, job: JobConfig) -> None:
    """A regression target needs a regression loss (mse, mae, huber, ...), not a classification one."""
    loss = str(job.training.loss)
    if data.task == "regression" and any(k in loss for k in _CLASSIFICATION_LOSSES):
        raise DataError(f"the target is a regression target (float values) but training.loss={loss} is a "
                        "classification loss", path="dataset.task", value=data.task,
                        fix="set training.loss=mse training.metrics=[mae] (or +experiment=table_regression), or "
                            "dataset.task=classification when the numbers are class labels")


def output_from_data(model_spec: dict, data, loss: str = "") -> dict:
    """The model spec with a last layer of ``units: null`` sized by the data (and ``activation: auto`` chosen:
    softmax for several classes, sigmoid for binary, none for regression).

    Two classes scored by a categorical loss (the default ``sparse_categorical_crossentropy``) get two softmax
    units: the same model as one sigmoid unit, and it needs no other loss or metric in the config.
    """
    layer_list = model_spec.get("layers")
    if not isinstance(layer_list, list) or not layer_list or not isinstance(layer_list[-1], dict):
        return model_spec
    last = dict(layer_list[-1])
    if "units" not in last or last["units"] is not None:
        return model_spec
    two_way = data.task == "binary" and "binary" not in str(loss)
    last["units"] = 2 if two_way else data.output_units
    if last.get("activation") == "auto":
        last["activation"] = "softmax" if two_way else {"classification": "softmax", "binary": "sigmoid"}.get(data.task)
    return {**model_spec, "layers": [*layer_list[:-1], last]}


def in_target_units(model, mean: float, std: float):
    """The model with its output mapped from the standardised target back to the target's own units.

    The network itself predicts ``(y - mean) / std`` (a target standardised by the training split's statistics),
    so its initial output is the mean; loss and metrics are then in the target's units (MAE in the units of the
    column), and so are a served model's answers.
    """
    import keras

    out = keras.layers.Rescaling(scale=std, offset=mean, name="target_units")(model.outputs[0])
    return keras.Model(model.inputs, out, name=model.name)


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


def split_datasets(job: JobConfig, data) -> dict:
    """The ``tf.data`` pipelines of the three splits: train shuffled by ``training.shuffle``, val and test in order."""
    bs, seed = job.training.batch_size, job.seed
    return {"train": data.tf_dataset("train", bs, shuffle=job.training.shuffle, seed=seed),
            "val": data.tf_dataset("val", bs, shuffle=False, seed=seed),
            "test": data.tf_dataset("test", bs, shuffle=False, seed=seed)}
