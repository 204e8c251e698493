"""Many hands on one store: runs and sweeps started at the same moment, dry-run and rejected sweeps.

Real processes of `python runner.py` against one fresh SQLite store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import mlflow
import pytest

from experiments.tracking import tags
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow  # real CLI processes: `pytest -m "not slow"` skips them

QUICK = [
    "dataset.limit=300",
    "training.epochs=1",
    "training.batch_size=128",
    "tracking.log_model=false",
    "tracking.log_plots=false",
]


def _start(args, tmp_path, name):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    dirs = [f"hydra.run.dir={tmp_path}/{name}/run", f"hydra.sweep.dir={tmp_path}/{name}/sweep"]
    return subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), *args, *dirs],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs, timeout=600):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def _ui_lists_experiment(store: str, name: str) -> bool:
    """`mlflow ui` over the store answers and lists the experiment (what a researcher opens)."""
    port = free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # its server workers go with it
    try:
        deadline = time.monotonic() + 300  # a liveness wait, not a speed check: a loaded machine starts it slowly
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.status == 200 and name in resp.read().decode()
            except OSError:
                time.sleep(0.5)
        return False
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a server slow to stop under load is not what this test checks
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait(timeout=60)


def test_four_single_runs_at_once_on_a_new_store(tmp_path):
    store = f"sqlite:///{tmp_path}/new.db"
    procs = [
        _start([*QUICK, f"seed={i}", f"tracking.uri={store}", "tracking.experiment=together"], tmp_path, f"r{i}")
        for i in range(4)
    ]
    results = _finish(procs)
    for code, _, stderr in results:
        assert code == 0, stderr[-3000:]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("together").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    assert len(client.search_experiments()) == 2  # Default + together, created once
    assert _ui_lists_experiment(store, "together")


def test_two_sweeps_at_once_on_a_new_store(tmp_path):
    store = f"sqlite:///{tmp_path}/new.db"
    procs = [
        _start(
            [
                "-m",
                *QUICK,
                "seed=0,1",
                f"model.activation={act}",
                f"tracking.uri={store}",
                "tracking.experiment=two_sweeps",
                "sweep.compare=false",
            ],
            tmp_path,
            act,
        )
        for act in ("abs", "relu")
    ]
    for code, stdout, stderr in _finish(procs):
        assert code == 0, (stdout[-2000:], stderr[-3000:])
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("two_sweeps").experiment_id])
    parents = [r for r in runs if r.data.tags[tags.ROLE] == tags.ROLE_PARENT]
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    for parent in parents:
        children = [r for r in runs if r.data.tags.get(tags.PARENT_RUN_ID) == parent.info.run_id]
        assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
        assert len({c.data.params["model.activation"] for c in children}) == 1  # each sweep kept its own jobs


# Another MLflow client (a notebook, `mlflow ui`) opening the same new SQLite file: it takes no layerlab lock, so
# both run MLflow's schema migration at once. It polls from the moment the file appears until it can read it.
POLLER = """
import os, sys, time, mlflow
path, uri = sys.argv[1], sys.argv[2]
deadline = time.time() + 300
while not os.path.exists(path) and time.time() < deadline:
    time.sleep(0.002)
errors = 0
while time.time() < deadline:
    try:
        mlflow.MlflowClient(uri).search_experiments()
        break
    except Exception:
        errors += 1
        time.sleep(0.05)
print(errors)
"""


def test_a_sweep_raced_by_another_mlflow_client_on_a_new_store_keeps_its_parent(tmp_path):
    db = tmp_path / "new.db"
    store = f"sqlite:///{db}"
    poller = subprocess.Popen(
        [sys.executable, "-c", POLLER, str(db), store], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    time.sleep(3)  # its imports done: it is waiting for the file when the sweep creates it
    ((code, stdout, stderr),) = _finish([_start(["-m", *QUICK, "seed=0,1", f"tracking.uri={store}"], tmp_path, "s")])
    poller.communicate(timeout=300)
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("layerlab").experiment_id])
    jobs = [r for r in runs if r.data.tags[tags.ROLE] == tags.ROLE_JOB]
    if code != 0:  # a store the other client left half-made: the sweep stopped before its first job, and said why
        assert "layerlab: error: tracking.uri" in stdout and jobs == [], (stdout[-2000:], stderr[-3000:])
        return
    (parent,) = [r for r in runs if r.data.tags[tags.ROLE] == tags.ROLE_PARENT]
    assert parent.info.status == "FINISHED" and "2/2 jobs finished" in stdout
    assert len(jobs) == 2 and all(j.data.tags.get(tags.PARENT_RUN_ID) == parent.info.run_id for j in jobs)


def test_dry_run_sweep_logs_nothing_and_says_what_is_valid(tmp_path):
    store = f"sqlite:///{tmp_path}/untouched.db"
    ((code, out, err),) = _finish(
        [
            _start(
                [
                    "-m",
                    "model=lambda_mlp,class_mlp",
                    "model.activation=abs,relu",
                    "dry_run=true",
                    f"tracking.uri={store}",
                ],
                tmp_path,
                "dry",
            )
        ]
    )
    assert code == 0, err[-3000:]
    assert (
        "layerlab: dry run: 4 config(s) composed, 4 valid (validated and built), 0 invalid; nothing was logged." in out
    )
    assert not (tmp_path / "untouched.db").exists()


def test_dry_run_sweep_with_a_bad_config_exits_non_zero_and_names_it(tmp_path):
    store = f"sqlite:///{tmp_path}/untouched.db"
    ((code, out, err),) = _finish(
        [_start(["-m", "training.epochs=3,0", "dry_run=true", f"tracking.uri={store}"], tmp_path, "dry_bad")]
    )
    assert code != 0
    assert "2 config(s) composed, 1 valid (validated and built), 1 invalid" in out
    assert "job 1 (training.epochs=0" in out and "expected a positive integer" in out
    assert not (tmp_path / "untouched.db").exists()


def test_sweep_rejected_by_the_basic_sweeper_stops_before_any_run(tmp_path):
    store = f"sqlite:///{tmp_path}/untouched.db"
    ((code, out, err),) = _finish(
        [_start(["-m", "optimizer.learning_rate=interval(0.0001,0.1)", f"tracking.uri={store}"], tmp_path, "interval")]
    )
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("layerlab: error: ")]
    assert len(errors) == 1 and "optimizer.learning_rate" in errors[0] and "hydra/sweeper=optuna" in errors[0]
    assert "Traceback" not in err and not (tmp_path / "untouched.db").exists()
