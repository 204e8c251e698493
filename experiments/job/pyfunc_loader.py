"""The pyfunc loader shipped inside every logged model (copied to ``code/layerlab_pyfunc.py``).

It is not imported by the project: MLflow imports it, as the model's
``loader_module``, after putting the model's ``code/`` folder (this file and a
copy of ``layers/``) first on ``sys.path``. So ``mlflow.pyfunc.load_model``
and ``mlflow models serve`` work in a process where only the package
dependencies (TensorFlow, Keras, MLflow) are installed. It imports nothing of
``experiments/``.
"""

import os

import numpy as np


def _keras_file(path: str) -> str:
    """The ``.keras`` file of the Keras flavour: ``<model>/data/model.keras``."""
    return os.path.join(path, "data", "model.keras")


class LayerlabKerasModel:
    """``predict(images) -> class probabilities``: the Keras model's output as a NumPy array."""

    def __init__(self, model):
        self.model = model

    def predict(self, data, params=None):
        x = data.to_numpy() if hasattr(data, "to_numpy") else np.asarray(data)
        return np.asarray(self.model.predict(x, verbose=0))

    def get_raw_model(self):
        return self.model


def _load_pyfunc(path, model_config=None):
    import importlib

    import keras

    # The copies shipped in code/: importing them registers the custom layers and functions.
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "layerlab_modules.txt")) as f:
        for name in f.read().split():
            importlib.import_module(name)
    return LayerlabKerasModel(keras.saving.load_model(_keras_file(path), safe_mode=True))
