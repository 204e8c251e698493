"""The layerlab launcher's workers live for the sweep (issue 21): started warm, reused by every batch, all gone at
its end, also when the sweep is interrupted.  Real spawned processes and real sweeps, no mocks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from experiments.config.launcher import (
    JOBLIB_LAUNCHER,
    LAYERLAB_LAUNCHER,
    LauncherSettings,
    available_cores,
    threads_per_worker,
)
from experiments.launching.pool import warm_pool
from tests.conftest import ROOT, TINY
from tests.test_sweep_speed import _processes_with

QUIET = ["tracking.log_model=false", "tracking.log_plots=false", "training.checkpoint.enabled=false"]


def _sweep(tmp_path, mark: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LAYERLAB_TEST_MARK": mark}
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "runner.py"),
            "-m",
            "hydra/launcher=layerlab",
            "hydra.launcher.n_jobs=2",
            *args,
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_root={(tmp_path / 'art').as_uri()}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _job_pids(db_path) -> dict[int, int]:
    """Each job's number -> the pid of the process that ran it (the runs' ``layerlab.pid`` tags)."""
    try:
        with sqlite3.connect(db_path) as db:
            rows = db.execute(
                "SELECT n.value, p.value FROM tags p JOIN tags n ON n.run_uuid = p.run_uuid "
                "AND n.key = 'layerlab.job_num' WHERE p.key = 'layerlab.pid'"
            ).fetchall()
    except sqlite3.OperationalError:  # the sweep is still creating the store
        return {}
    return {int(num): int(pid) for num, pid in rows}


def test_only_a_layerlab_sweep_gets_a_pool():
    assert warm_pool(LauncherSettings(target=JOBLIB_LAUNCHER, n_jobs=2), 4) is None
    assert warm_pool(LauncherSettings(), None) is None


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every batch size gives a worker one thread")
def test_a_batch_takes_the_warm_workers_and_replaces_those_with_another_thread_share():
    pool = warm_pool(LauncherSettings(target=LAYERLAB_LAUNCHER, n_jobs=2), 5)
    try:
        share = threads_per_worker(2)
        assert [w.threads for w in pool.idle] == [share, share] and pool.busy == []
        warm = [w.proc.pid for w in pool.idle]
        os.kill(warm[1], signal.SIGKILL)  # a warm worker that died before its batch is not handed out
        pool.idle[1].proc.join(timeout=60)
        first = pool.take(2, share)
        assert first[0].proc.pid == warm[0] and first[1].proc.pid not in warm
        pool.give_back(first)
        assert sorted(w.proc.pid for w in pool.idle) == sorted(w.proc.pid for w in first) and pool.busy == []
        (alone,) = pool.take(1, threads_per_worker(1))  # a batch of one job: one worker, all threads, a new process
        assert alone.threads == available_cores() and alone.proc.pid not in {w.proc.pid for w in first}
        assert pool.idle == [] and pool.retired[-2:] == first  # told to stop, not waited for by the batch
    finally:
        everyone = pool.idle + pool.busy + pool.retired
        assert pool.close()
    assert not any(w.proc.is_alive() for w in everyone) and pool.idle == pool.busy == pool.retired == []


@pytest.mark.slow
def test_the_rounds_of_a_sweep_run_on_the_same_workers_and_none_is_left(tmp_path):
    mark = uuid.uuid4().hex
    # Two batches: seeds 0,1 for both activations (4 jobs), then a round of one new seed each (2 jobs).
    proc = _sweep(
        tmp_path,
        mark,
        "model.activation=abs,relu",
        "seed=0,1",
        *TINY,
        *QUIET,
        "sweep.until.ci_half_width=0.000001",
        "sweep.until.max_replicates=3",
        "sweep.until.step=1",
    )
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "layerlab: round 2 (3 seeds per group)" in out and "6/6 jobs finished" in out
    pids = _job_pids(tmp_path / "mlflow.db")
    assert sorted(pids) == list(range(6))
    first, second = {pids[n] for n in range(4)}, {pids[n] for n in range(4, 6)}
    assert len(first) == 2 and proc.pid not in first  # two workers, not the sweep's own process
    assert second <= first, (first, second)  # round 2 ran on the workers of round 1 (TensorFlow imported)
    assert _processes_with(mark) == []  # the sweep's end stopped them


@pytest.mark.slow
def test_an_interrupted_sweep_leaves_no_worker(tmp_path):
    mark = uuid.uuid4().hex
    proc = _sweep(
        tmp_path, mark, "seed=0,1,2,3", "dataset.limit=2000", "training.epochs=200", "training.batch_size=64", *QUIET
    )
    deadline = time.monotonic() + 300  # a liveness bound for a loaded machine, not a speed check
    while not (tmp_path / "mlflow.db").exists() or not _job_pids(tmp_path / "mlflow.db"):
        assert proc.poll() is None and time.monotonic() < deadline, "no job started"
        time.sleep(0.5)
    workers = set(_processes_with(mark)) - {proc.pid}
    assert len(workers) >= 2
    proc.send_signal(signal.SIGTERM)  # the sweep's process only; its workers are told by it
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out
    assert _processes_with(mark) == []


@pytest.mark.slow
def test_a_failed_sweep_leaves_no_worker(tmp_path):
    mark = uuid.uuid4().hex
    # dataset.limit=30 cannot be split into stratified train/val/test: that job fails inside its run.
    proc = _sweep(tmp_path, mark, "dataset.limit=30,400", "training.epochs=1", "training.batch_size=128", *QUIET)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out[-3000:]
    assert "1/2 jobs finished" in out
    assert _processes_with(mark) == []
