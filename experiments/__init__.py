"""Build, train, track and compare: the Python behind ``runner.py``.

Modules: ``builder`` (YAML model graphs -> Keras), ``data`` (datasets),
``train`` (compile/fit/evaluate), ``tracking`` and ``job`` (MLflow runs),
``sweep`` (multirun parent runs), ``compare`` (statistics over runs).
Imports are lazy so that ``import experiments`` does not start TensorFlow.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the useful lines; set
# here too because launcher workers (joblib/loky) do not always inherit runner.py's setting.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["build_model"]


def __getattr__(name):
    if name == "build_model":
        from experiments.models.builder import build_model

        return build_model
    raise AttributeError(name)
