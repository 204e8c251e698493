"""Process-wide settings, made in one place at process start.

Called first thing by ``runner.py`` and the command entries (``python -m
experiments.upload``, ``python -m experiments.compare``), before TensorFlow
or MLflow are imported; launcher workers (joblib/loky, Ray) started from that
process inherit them.  No other module of the project sets environment
variables or other global state at import time.
"""

import os

PROCESS_ENV = {
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the useful lines.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # MLflow's HTTP client retries 7 times with exponential back-off (minutes) by default: a dead
    # server would freeze each logging call. Fail fast; experiments.tracking retries itself.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def configure_process() -> None:
    """Process-wide defaults, set once at start (a variable the user set wins).

    Set before TensorFlow and MLflow are imported, and inherited by launcher
    workers (joblib/loky, Ray) started from this process.
    """
    for key, value in PROCESS_ENV.items():
        os.environ.setdefault(key, value)
