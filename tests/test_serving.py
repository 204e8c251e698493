"""``mlflow models serve`` on a logged layerlab model answers /invocations with class probabilities, or with the
class names when the request asks ``"params": {"output": "labels"}``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from experiments.job.artifacts import log_model
from experiments.models import build_model
from tests.conftest import compose, free_port

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _post(url: str, body: dict, timeout: float = 60) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_served_model_answers_with_class_probabilities_or_on_request_names(tmp_path, store):
    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("serving", artifact_location=str(tmp_path / "artifacts"))
    model = build_model(compose("model=lambda_mlp").model)  # Lambda layers with the lab's registered functions
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28)).astype("uint8")
    mlflow.set_tracking_uri(store)
    try:
        with mlflow.start_run(experiment_id=exp) as run:
            log_model(model, x, class_names=NAMES, task="classification")
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    model_uri = client.get_run(run.info.run_id).data.tags["layerlab.model_uri"]
    expected = model.predict(x, verbose=0)

    port = free_port()
    mlflow_cli = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    # As with an activated virtualenv: the scoring server execs `uvicorn` from PATH (make test does not activate it).
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [
            mlflow_cli,
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        answer = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": x.tolist()})
        named = _post(f"http://127.0.0.1:{port}/invocations", {"inputs": x.tolist(), "params": {"output": "labels"}})
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)  # the CLI and the uvicorn worker it started
            server.wait(timeout=20)
        except ProcessLookupError:
            pass  # it had already ended (the assertion above says why)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    probs = np.asarray(answer["predictions"])
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert named["predictions"] == [NAMES[i] for i in probs.argmax(axis=1)]
