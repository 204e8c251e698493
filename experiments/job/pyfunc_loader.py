"""The pyfunc loader shipped inside every logged model (copied to ``code/layerlab_pyfunc.py``).

It is not imported by the project at run time: MLflow imports it, as the
model's ``loader_module``, after putting the model's ``code/`` folder (this
file and a copy of ``layers/``) first on ``sys.path``. So
``mlflow.pyfunc.load_model`` and ``mlflow models serve`` work in a process
where only the package dependencies (TensorFlow, Keras, MLflow) are
installed. It imports nothing of ``experiments/`` (the project imports its
constants: :data:`OUTPUT_PARAM`, :data:`OUTPUTS`).

What it answers is chosen per call by the inference parameter ``output``
(declared in the model signature's params schema, so ``mlflow models serve``
accepts it as ``{"inputs": ..., "params": {"output": "labels"}}``):
``probabilities`` (the default: the Keras model's output, as before) or
``labels`` (one class per row: its name from the MLmodel metadata
``class_names``, or its index when the data had no names). A regression model
has no params schema and always answers with its numbers.
"""

import os

import numpy as np

OUTPUT_PARAM = "output"
OUTPUTS = ("probabilities", "labels")


def _keras_file(path: str) -> str:
    """The ``.keras`` file of the Keras flavour: ``<model>/data/model.keras``."""
    return os.path.join(path, "data", "model.keras")


def to_labels(out, class_names=None):
    """One class per row of the model's output ``out``: argmax of several units, one sigmoid unit by 0.5.

    Returns the class names (a string array) when ``class_names`` is given, else the class indices.
    """
    out = np.asarray(out)
    # By the output's width, not the task: a two-class task may have two softmax units (a categorical loss).
    if out.ndim < 2 or out.shape[-1] == 1:
        index = (out.reshape(len(out), -1)[:, 0] > 0.5).astype(np.int64)
    else:
        index = np.argmax(out, axis=-1)
    return np.asarray([str(n) for n in class_names])[index] if class_names else index


class LayerlabKerasModel:
    """``predict(x, params) -> class probabilities`` (default), class labels (``output: labels``), or values."""

    def __init__(self, model, class_names=None, task=None):
        self.model = model
        self.class_names = list(class_names) if class_names else None
        self.task = task

    def predict(self, data, params=None):
        x = data.to_numpy() if hasattr(data, "to_numpy") else np.asarray(data)
        out = np.asarray(self.model.predict(x, verbose=0))
        output = (params or {}).get(OUTPUT_PARAM) or OUTPUTS[0]
        if output not in OUTPUTS:
            from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

            raise MlflowException(
                f"params.{OUTPUT_PARAM} must be one of {', '.join(OUTPUTS)}, not {output!r}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        if output == "probabilities" or self.task == "regression":
            return out
        return to_labels(out, self.class_names)

    def get_raw_model(self):
        return self.model


def _metadata(path: str) -> dict:
    """The ``metadata`` of the model's MLmodel file (``class_names``, ``task``), or {} for an older model."""
    import yaml

    mlmodel = os.path.join(path, "MLmodel")
    if not os.path.isfile(mlmodel):
        return {}
    with open(mlmodel) as f:
        return (yaml.safe_load(f) or {}).get("metadata") or {}


def _load_pyfunc(path, model_config=None):
    import importlib

    import keras

    # The copies shipped in code/: importing them registers the custom layers and functions.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "layerlab_modules.txt")) as f:
        for name in f.read().split():
            importlib.import_module(name)
    meta = _metadata(path)
    model = keras.saving.load_model(_keras_file(path), safe_mode=True)
    return LayerlabKerasModel(model, meta.get("class_names"), meta.get("task"))
