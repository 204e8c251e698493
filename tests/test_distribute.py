"""tf.distribute strategies: mirrored on two logical CPUs, multi-worker with two local worker processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import mlflow
import pytest

from tests.conftest import ROOT, TINY, run_cli

pytestmark = pytest.mark.slow  # real CLI processes: `pytest -m "not slow"` skips them

FAST = [*TINY, "tracking.log_model=false", "tracking.log_plots=false", "training.checkpoint.enabled=false"]


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, store):
    proc = run_cli(
        *FAST, "training.strategy=mirrored", "training.logical_cpus=2", f"tracking.uri={store}", tmp_path=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy with 2 replicas; global batch 128" in proc.stdout
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("layerlab").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["training.strategy"] == "mirrored"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss")) == [0, 1]


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_two_processes_log_once_from_the_chief(tmp_path, store):
    ports = _ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "runner.py"),
                    *FAST,
                    "training.strategy=multi_worker",
                    f"tracking.uri={store}",
                    "tracking.experiment=multi",
                    f"hydra.run.dir={tmp_path}/w{index}",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "CollectiveAllReduceStrategy with 2 replicas" in outs[0][0]
    assert "the chief logged the run" in outs[1][0]
    # Both workers trained the same synchronised model: identical per-epoch lines.
    epochs = [[line for line in out.splitlines() if line.startswith("Epoch 2/2")] for out, _ in outs]
    assert epochs[0] and epochs[0] == epochs[1]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("multi").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")) == [0, 1]
    assert "test_sparse_categorical_accuracy" in runs[0].data.metrics
