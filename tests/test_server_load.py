"""Load on the team server (issue 15, part 4): 32 jobs through 4 parallel workers into one MLflow server.

``scripts/mlflow_stack.sh`` starts PostgreSQL and the MLflow server (private state folder, free loopback
ports, stopped at the end even when the test fails). One ``python runner.py -m`` sweep of 32 tiny jobs
(16 seeds x 2 activations, 2 epochs on 200 digits, no model, no plots, no comparison) runs through
``hydra/launcher=layerlab`` with 4 workers, each job logging every epoch to the server. Read back through
the server's REST API: 32/32 job runs FINISHED, each with every epoch step (0..epochs-1) of its per-epoch
metrics, and exactly one parent run with exactly these 32 children.

The server-side latency of ``log_batch`` under 1, 4 and 8 concurrent writers is a benchmark, not a test:
``python -m bench.server_load`` (BENCHMARKS.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mlflow
import pytest

from tests.conftest import ROOT
from tests.mlflow_stack_helpers import env, running_stack, tail

pytestmark = pytest.mark.slow  # real CLI processes and servers: `pytest -m "not slow"` skips them

SEEDS, ACTIVATIONS, EPOCHS, WORKERS = 16, ("abs", "relu"), 2, 4
JOBS = SEEDS * len(ACTIVATIONS)
EXPERIMENT = "server_load"
# loss, the judged metric (the first of training.metrics, by default), their validation values, epoch time
PER_EPOCH = ("loss", "val_loss", "sparse_categorical_accuracy", "val_sparse_categorical_accuracy", "epoch_time_s")
SWEEP_TIMEOUT = 480


@pytest.fixture(scope="module")
def server():
    with running_stack() as info:
        yield info


def test_32_jobs_through_4_workers_all_land_on_the_server(server, tmp_path):
    sweep_dir = tmp_path / "load"
    cmd = [
        sys.executable,
        str(ROOT / "runner.py"),
        "-m",
        "hydra/launcher=layerlab",
        f"hydra.launcher.n_jobs={WORKERS}",
        f"seed=range(0,{SEEDS})",
        f"model.activation={','.join(ACTIVATIONS)}",
        "dataset.limit=200",
        f"training.epochs={EPOCHS}",
        "tracking=server",
        f"tracking.uri={server['uri']}",
        f"tracking.experiment={EXPERIMENT}",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        "sweep.compare=false",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
    wall_s = time.perf_counter() - t0
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{tail(proc)}"

    client = mlflow.MlflowClient(server["uri"])  # an http URI: everything below goes through the REST API
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"no experiment {EXPERIMENT!r} on the server"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    here = str(sweep_dir.resolve())
    parents = [
        r
        for r in runs
        if r.data.tags.get("layerlab.role") == "parent" and r.data.tags.get("layerlab.sweep_dir") == here
    ]
    assert len(parents) == 1, f"{len(parents)} parent runs for {here}"
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics.get("jobs_finished") == JOBS and parent.data.metrics.get("jobs_failed") == 0

    children = client.search_runs(
        [exp.experiment_id], max_results=1000, filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    jobs = [
        r
        for r in runs
        if r.data.tags.get("layerlab.role") == "job"
        and r.data.tags.get("layerlab.output_dir", "").startswith(here + os.sep)
    ]
    assert len(children) == JOBS, f"{len(children)} children under the parent, expected {JOBS}"
    assert sorted(r.info.run_id for r in children) == sorted(r.info.run_id for r in jobs)  # no detached job run
    assert [r.info.status for r in children] == ["FINISHED"] * JOBS
    assert len(runs) == JOBS + 1, f"{len(runs)} runs in the experiment, expected {JOBS} jobs + 1 parent"
    assert sorted((r.data.params["model.activation"], int(r.data.params["seed"])) for r in children) == sorted(
        (a, s) for a in ACTIVATIONS for s in range(SEEDS)
    )

    missing = {}
    for r in children:
        for key in PER_EPOCH:
            steps = sorted(m.step for m in client.get_metric_history(r.info.run_id, key))
            if steps != list(range(EPOCHS)):
                missing[(r.data.params["model.activation"], r.data.params["seed"], key)] = steps
    assert not missing, f"per-epoch metrics without exactly the steps 0..{EPOCHS - 1}: {missing}"
    print(f"stack start {server['start_s']:.1f} s; {JOBS} jobs through {WORKERS} workers {wall_s:.1f} s")
