"""A logged model that carries its own code, so it loads outside the lab.

``mlflow.keras.log_model`` has neither ``code_paths`` nor ``custom_objects``:
its pyfunc loader finds the custom layers only in a process that imported
``layers`` first. :func:`log_self_contained_model` logs the same Keras flavour
(``data/model.keras``, so ``mlflow.keras.load_model`` keeps working) and adds
MLflow's ``code/`` folder, which pyfunc puts first on ``sys.path`` at load:

- ``code/layers/``: a copy of the layer library (custom layers and functions),
  plus the top-level package of every ``registry.modules`` entry;
- ``code/layerlab_pyfunc.py``: the pyfunc ``loader_module``
  (:mod:`experiments.job.pyfunc_loader`), which imports those modules, then
  loads the ``.keras`` file in safe mode.

Why not ``custom_objects`` (cloudpickle): a pickled class is stored by
reference to its module, so it needs that module importable anyway, and a
pickle ties the model to one Python version. Copying the source is what
``code_paths`` does; here it is done by hand because the Keras flavour lacks it.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import mlflow
import numpy as np

import layers
from experiments.job.pyfunc_loader import OUTPUT_PARAM, OUTPUTS

LOADER = Path(__file__).with_name("pyfunc_loader.py")
LOADER_MODULE = "layerlab_pyfunc"
MODULES_FILE = "layerlab_modules.txt"
# The input example is stored as JSON beside the model: at most this many values (about 6 bytes each),
# so a 512x512x3 image (786,432 values) gets a signature but no example.
EXAMPLE_MAX_VALUES = 100_000


def example_rows(x: np.ndarray, max_rows: int = 2) -> np.ndarray | None:
    """The first rows of ``x`` that fit :data:`EXAMPLE_MAX_VALUES`, or None when one row does not."""
    per_row = int(np.prod(x.shape[1:])) if x.ndim > 1 else 1
    n = min(max_rows, len(x), EXAMPLE_MAX_VALUES // max(per_row, 1))
    return x[:n] if n >= 1 else None


def _package_dirs(modules) -> list[Path]:
    """The folders (or single files) of ``layers`` and of the top-level package of each registry module."""
    found = {Path(layers.__file__).parent}
    for name in modules or ():
        top = importlib.import_module(str(name).split(".")[0])
        file = Path(getattr(top, "__file__", "") or "")
        if file.name == "__init__.py":
            found.add(file.parent)
        elif file.suffix == ".py":
            found.add(file)
    return sorted(found)


def output_params(task: str | None) -> dict | None:
    """The inference parameters a model's signature declares, with their defaults (MLflow infers the params schema).

    A classifier answers ``predict(x, params={"output": "labels"})`` (or a served request's ``"params"``) with the
    class name of each row; the default, ``probabilities``, keeps what every client got before. A regression
    model declares none: it answers with its values.
    """
    return None if task == "regression" else {OUTPUT_PARAM: OUTPUTS[0]}


def model_metadata(class_names, task: str | None) -> dict | None:
    """The MLmodel ``metadata`` the pyfunc loader reads: ``class_names`` (index -> name) and ``task``."""
    meta: dict[str, object] = {"class_names": [str(n) for n in class_names]} if class_names else {}
    if task:
        meta["task"] = str(task)
    return meta or None


class _SelfContainedKeras:
    """The flavour object ``mlflow.models.Model.log`` calls: the Keras flavour plus ``code/``."""

    def __init__(self, modules):
        self.modules = [str(m) for m in modules or ()]

    def save_model(self, path, mlflow_model, keras_model, signature, input_example, pip_requirements, **_):
        # MLflow 3.17's Keras flavour writes input_example.json before it creates the model folder
        # (FileNotFoundError, the upstream bug in the notes): create the folder first.
        Path(path).mkdir(parents=True, exist_ok=True)
        mlflow.keras.save_model(
            keras_model,
            path,
            mlflow_model=mlflow_model,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
        )
        code = Path(path) / "code"
        code.mkdir()
        for src in _package_dirs(self.modules):
            if src.is_dir():
                shutil.copytree(src, code / src.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, code / src.name)
        shutil.copy2(LOADER, code / f"{LOADER_MODULE}.py")
        (code / MODULES_FILE).write_text("\n".join(["layers", *self.modules]) + "\n")
        pyfunc = mlflow_model.flavors["python_function"]
        pyfunc["loader_module"] = LOADER_MODULE
        pyfunc["code"] = "code"
        mlflow_model.save(str(Path(path) / "MLmodel"))


def log_self_contained_model(keras_model, signature, input_example, pip_requirements, modules=(), metadata=None):
    """Log ``keras_model`` as ``model`` of the active run; returns MLflow's ``ModelInfo``.

    ``metadata`` goes into the MLmodel file (``class_names``: the name of each output index, read back with
    ``mlflow.models.get_model_info(uri).metadata``).

    ``validate_serving_input=False``: MLflow would otherwise load the model back
    through pyfunc and predict on the example while logging (seconds per run).
    """
    return mlflow.models.Model.log(
        artifact_path=None,
        name="model",
        flavor=_SelfContainedKeras(modules),
        keras_model=keras_model,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        validate_serving_input=False,
        metadata=metadata,
    )
