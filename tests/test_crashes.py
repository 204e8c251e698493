"""Crashes without loss: heartbeats and the doctor (no run RUNNING forever), damaged checkpoints on resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from experiments.errors import ConfigError
from experiments.tracking import tags
from experiments.tracking.doctor import close_lost, lost_reason
from experiments.tracking.heartbeat import Heartbeat, identity
from tests.conftest import ROOT, run_cli
from tests.liveness import wait_until

LONG = [
    "dataset.limit=2000",
    "training.epochs=12",
    "training.batch_size=64",
    "tracking.log_model=false",
    "tracking.log_plots=false",
]
HOST = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # just exited: free (pid reuse within the test is practically impossible)


# ----------------------------------------------------------------------------------- heartbeat + doctor
def test_lost_reason_tells_dead_from_alive():
    now = time.time()
    me = identity()
    mine = {tags.HEARTBEAT: f"{now - 1000:.0f}", **me}
    assert lost_reason(mine, now=now) is None  # this very process: alive however old its beat
    dead = {tags.HEARTBEAT: f"{now - 5:.0f}", tags.HOST: HOST, tags.PID: str(_dead_pid())}
    assert lost_reason(dead, now=now).startswith("process lost; last heartbeat at ")
    reused = {**me, tags.HEARTBEAT: f"{now:.0f}", tags.PID_START: "1"}  # same pid, another process start
    assert lost_reason(reused, now=now) is not None
    other_fresh = {tags.HEARTBEAT: f"{now - 60:.0f}", tags.HOST: "elsewhere", tags.PID: "1"}
    assert lost_reason(other_fresh, now=now) is None  # alive on another machine: never touched
    other_stale = {**other_fresh, tags.HEARTBEAT: f"{now - 600:.0f}"}
    assert "no heartbeat for 600 s" in lost_reason(other_stale, now=now)
    assert lost_reason({tags.HOST: HOST, tags.PID: str(_dead_pid())}, now=now) is None  # no heartbeat: unknown


def test_doctor_closes_only_lost_runs(store, tmp_path, capsys):
    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("doc", artifact_location=str(tmp_path / "art"))
    now = time.time()

    def run(name, **extra):
        return client.create_run(exp, run_name=name, tags={tags.OVERRIDES: '["seed=3"]', **extra}).info.run_id

    dead = run("dead", **{tags.HEARTBEAT: f"{now - 40:.0f}", tags.HOST: HOST, tags.PID: str(_dead_pid())})
    alive_here = run("alive", **{tags.HEARTBEAT: f"{now:.0f}", **identity()})
    alive_there = run("there", **{tags.HEARTBEAT: f"{now - 30:.0f}", tags.HOST: "gpu-7", tags.PID: "42"})
    stale_there = run("stale", **{tags.HEARTBEAT: f"{now - 3600:.0f}", tags.HOST: "gpu-7", tags.PID: "43"})
    old_style = run("no-beat")
    lost = close_lost(store, [exp])
    assert {r.run_id for r in lost} == {dead, stale_there}
    for rid in (dead, stale_there):
        r = client.get_run(rid)
        assert r.info.status == "FAILED"
        assert r.data.tags[tags.ERROR].startswith("process lost; last heartbeat at ")
        assert f"python runner.py seed=3 training.resume={rid}" in r.data.tags[tags.ERROR]
    for rid in (alive_here, alive_there, old_style):
        assert client.get_run(rid).info.status == "RUNNING"
    assert "closed run" in capsys.readouterr().out
    assert close_lost(store, [exp]) == []  # nothing left


def test_doctor_closes_a_lost_sweep_parent_with_the_completing_command_and_its_orphans(store, tmp_path):
    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("sweep-doc", artifact_location=str(tmp_path / "art"))
    now = time.time()
    command = "python runner.py -m model.activation=abs,relu seed=0,1 sweep.skip_finished=true"
    parent = client.create_run(
        exp,
        run_name="sweep s1",
        tags={
            tags.ROLE: tags.ROLE_PARENT,
            tags.COMPLETING_COMMAND: command,
            tags.HEARTBEAT: f"{now - 20:.0f}",
            tags.HOST: HOST,
            tags.PID: str(_dead_pid()),
        },
    ).info.run_id

    def child(name, **extra):
        return client.create_run(
            exp,
            run_name=name,
            tags={tags.ROLE: tags.ROLE_JOB, tags.PARENT_RUN_ID: parent, tags.OVERRIDES: '["seed=1"]', **extra},
        ).info.run_id

    unborn = child("no beat yet")  # its process died before its first beat: only the parent tells
    alive = child("alive", **{tags.HEARTBEAT: f"{now:.0f}", **identity()})  # still running elsewhere in a worker
    done = child("done")
    client.set_terminated(done, "FINISHED")
    other = client.create_run(exp, run_name="unrelated, no beat").info.run_id  # not this sweep's: untouched

    lost = close_lost(store, [exp])
    assert {r.run_id for r in lost} == {parent, unborn}
    p = client.get_run(parent)
    assert p.info.status == "FAILED"
    assert p.data.tags[tags.ERROR].startswith("process lost; last heartbeat at ")
    assert f"complete the sweep (every job without a FINISHED run) with: {command}" in p.data.tags[tags.ERROR]
    text = Path(client.download_artifacts(parent, "error.txt", str(tmp_path))).read_text()
    assert command in text
    assert client.get_run(unborn).info.status == "FAILED"
    assert "the sweep's process was lost" in client.get_run(unborn).data.tags[tags.ERROR]
    assert [client.get_run(r).info.status for r in (alive, done, other)] == ["RUNNING", "FINISHED", "RUNNING"]
    assert close_lost(store, [exp]) == []


def test_heartbeat_writes_host_pid_and_time(store, tmp_path):
    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("beat", artifact_location=str(tmp_path / "art"))
    rid = client.create_run(exp).info.run_id
    started = time.time()
    beat = Heartbeat(store, rid, interval_s=0.2).start()
    deadline = time.monotonic() + 120  # a loaded machine may delay the beats; only their count matters
    while beat.beats < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    beat.stop()
    t = client.get_run(rid).data.tags
    assert t[tags.HOST] == HOST and t[tags.PID] == str(os.getpid())
    assert beat.beats >= 2
    assert started - 1 <= float(t[tags.HEARTBEAT]) <= time.time() + 1  # the time of a beat, not another clock


# ------------------------------------------------------------------------------------ damaged checkpoint
@pytest.fixture(scope="module")
def checkpoint_folder(tmp_path_factory) -> Path:
    import keras

    folder = tmp_path_factory.mktemp("ck")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.save(folder / "last.keras")
    model.save(folder / "best.keras")
    (folder / "state.json").write_text(json.dumps({"epochs_done": 3}))
    return folder


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_intact_checkpoint_loads(checkpoint_folder):
    from experiments.training.checkpoint import load_checkpoint

    epochs, model = load_checkpoint(checkpoint_folder)
    assert epochs == 3 and model.count_params() == 10


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_checkpoint_is_a_clear_error(checkpoint_folder, tmp_path, damage):
    from experiments.training.checkpoint import load_checkpoint

    folder = _copy(checkpoint_folder, tmp_path / "ck")
    last = folder / "last.keras"
    data = bytearray(last.read_bytes())
    if damage == "truncate":
        last.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        mid = len(data) // 3
        data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
        last.write_bytes(bytes(data))
    else:
        last.write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        load_checkpoint(folder)
    text = str(info.value)
    assert f"the checkpoint {last} is damaged" in text and "\n" not in text
    assert "start over (run without training.resume)" in text
    assert f"cp {folder / 'best.keras'} {last}" in text  # best.keras is intact: offered
    (folder / "best.keras").write_bytes(b"junk")
    with pytest.raises(ConfigError) as info:
        load_checkpoint(folder)
    assert "best" not in str(info.value).split("Fix:")[-1]


# ------------------------------------------------------------------------------- real processes (slow)
def _popen(args, tmp_path, env: dict | None = None, **popen):
    """``runner.py`` with ``args`` (a sweep when they start with ``-m``), its output folder under ``tmp_path``."""
    folder = f"hydra.sweep.dir={tmp_path}/multirun" if args[:1] == ["-m"] else f"hydra.run.dir={tmp_path}/outputs/run"
    popen = popen or {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), *args, folder],
        cwd=ROOT,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        **popen,
    )


def _wait_for_epochs(folder: Path, n: int, proc, timeout: float = 180) -> None:
    state = folder / "checkpoints/state.json"

    def done():
        try:
            return True if json.loads(state.read_text())["epochs_done"] >= n else None
        except (OSError, ValueError, KeyError):
            return None

    wait_until(done, proc, timeout, f"checkpoint of {n} epochs")


@pytest.mark.slow
def test_kill9_run_is_closed_by_doctor_and_resumes(tmp_path, store):
    args = [*LONG, f"tracking.uri={store}", "tracking.experiment=zombie", "training.checkpoint.every_s=0"]
    proc = _popen(args, tmp_path / "first")
    _wait_for_epochs(tmp_path / "first/outputs/run", 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    client = mlflow.MlflowClient(store)
    exp = client.get_experiment_by_name("zombie").experiment_id
    (run,) = client.search_runs([exp])
    assert run.info.status == "RUNNING"  # what MLflow alone would keep forever
    assert run.data.tags[tags.PID] == str(proc.pid) and run.data.tags[tags.HOST] == HOST

    doc = subprocess.run(
        [sys.executable, "-m", "experiments.doctor", "--tracking-uri", store],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert doc.returncode == 0, doc.stderr[-2000:]
    assert f"closed run {run.info.run_id}" in doc.stdout and "1 lost run(s) closed FAILED" in doc.stdout
    closed = client.get_run(run.info.run_id)
    assert closed.info.status == "FAILED"
    assert closed.data.tags[tags.ERROR].startswith("process lost; last heartbeat at ")

    epochs_done = json.loads((tmp_path / "first/outputs/run/checkpoints/state.json").read_text())["epochs_done"]
    resumed = run_cli(*args, "training.resume=true", tmp_path=tmp_path / "second")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming run {run.info.run_id} after epoch {epochs_done}" in resumed.stdout
    again = client.get_run(run.info.run_id)
    assert again.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "loss")}
    assert set(range(epochs_done, 12)) <= steps


@pytest.mark.slow
def test_next_run_closes_a_zombie_automatically(tmp_path, store):
    client = mlflow.MlflowClient(store)
    exp = client.create_experiment("auto", artifact_location=str(tmp_path / "art"))
    zombie = client.create_run(
        exp, tags={tags.HEARTBEAT: f"{time.time():.0f}", tags.HOST: HOST, tags.PID: str(_dead_pid())}
    ).info.run_id
    proc = run_cli(
        "dataset.limit=400",
        "training.epochs=1",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        f"tracking.uri={store}",
        "tracking.experiment=auto",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"closed run {zombie}" in proc.stdout
    assert client.get_run(zombie).info.status == "FAILED"


@pytest.mark.slow
def test_resume_from_a_damaged_checkpoint_is_one_paragraph(tmp_path, store):
    args = [*LONG, f"tracking.uri={store}", "tracking.experiment=damaged", "training.checkpoint.every_s=0"]
    proc = _popen(args, tmp_path / "first")
    _wait_for_epochs(tmp_path / "first/outputs/run", 2, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    last = tmp_path / "first/outputs/run/checkpoints/last.keras"
    last.write_bytes(last.read_bytes()[:1000])  # a copy cut short
    resumed = run_cli(*args, "training.resume=true", tmp_path=tmp_path / "second")
    assert resumed.returncode == 2
    assert "Traceback" not in resumed.stderr
    assert "layerlab: error: training.resume" in resumed.stderr
    assert f"the checkpoint {last} is damaged" in resumed.stderr and "start over" in resumed.stderr
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("damaged").experiment_id])
    assert run.info.status == "KILLED"  # not reopened


# ----------------------------------------------------------------------------- a killed sweep worker
def _wait_for_running_job(client, exp_name: str, proc, timeout: float = 240):
    def running_job():
        exp = client.get_experiment_by_name(exp_name)
        for r in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []:
            if (
                r.data.tags.get(tags.PID)
                and r.data.tags.get(tags.ROLE) == "job"
                and client.get_metric_history(r.info.run_id, "loss")
            ):
                return r
        return None

    return wait_until(running_job, proc, timeout, "running job with a logged epoch")


@pytest.mark.slow
def test_sigkill_of_a_worker_is_one_failed_job_and_the_summary_completes(tmp_path, store):
    sweep = [
        "-m",
        "hydra/launcher=layerlab",
        "hydra.launcher.n_jobs=2",
        *LONG,
        "training.epochs=8",
        f"tracking.uri={store}",
        "tracking.experiment=killed",
        "seed=0,1,2,3",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    client = mlflow.MlflowClient(store)  # the store is created here, before the sweep: two first users race
    proc = _popen(sweep, tmp_path, env)
    victim = _wait_for_running_job(client, "killed", proc)
    os.kill(int(victim.data.tags[tags.PID]), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    (tmp_path / "sweep_out.txt").write_text(out + "\n----- stderr\n" + err)
    assert proc.returncode != 0
    assert "Traceback" not in out + err
    exp = client.get_experiment_by_name("killed").experiment_id
    jobs = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'job'")
    by_status = {}
    for r in jobs:
        by_status.setdefault(r.info.status, []).append(r)
    assert len(by_status.get("FINISHED", [])) == 3, {k: len(v) for k, v in by_status.items()}
    (dead,) = by_status["FAILED"]
    assert dead.info.run_id == victim.info.run_id
    assert dead.data.tags[tags.ERROR].startswith("the worker process was killed by signal 9 (SIGKILL); out of memory?")
    assert "3/4 jobs finished" in out
    assert f"job {victim.data.tags[tags.JOB_NUM]} FAILED: the worker process was killed by signal 9" in out
    complete = next(line.strip() for line in out.splitlines() if "sweep.skip_finished=true" in line)
    assert complete.startswith("python runner.py -m hydra/launcher=layerlab hydra.launcher.n_jobs=2 ")
    assert "seed=0,1,2,3" in complete
    summary = (tmp_path / "multirun/sweep_summary.md").read_text()
    assert "sweep.skip_finished=true" in summary

    # The completing command runs only the killed job.
    words = complete.split()[2:] + [f"hydra.sweep.dir={tmp_path}/complete"]
    again = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *words],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("layerlab: skipped, config") == 3
    finished = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'job' and attributes.status = 'FINISHED'")
    assert len(finished) == 4


@pytest.mark.slow
def test_a_dead_worker_of_the_stock_joblib_launcher_ends_with_the_summary_not_a_traceback(tmp_path, store):
    """hydra/launcher=joblib loses its batch when a worker dies; the sweep still ends as a failed sweep does."""
    sweep = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *LONG,
        "training.epochs=8",
        f"tracking.uri={store}",
        "tracking.experiment=joblib_killed",
        "seed=0,1,2,3",
    ]
    client = mlflow.MlflowClient(store)  # the store is created here, before the sweep: two first users race
    proc = _popen(sweep, tmp_path)
    victim = _wait_for_running_job(client, "joblib_killed", proc)
    os.kill(int(victim.data.tags[tags.PID]), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    (tmp_path / "sweep_out.txt").write_text(out + "\n----- stderr\n" + err)
    assert proc.returncode == 1
    assert "Traceback" not in out + err and "TerminatedWorkerError" not in out + err
    assert "layerlab: error: a worker process of the joblib launcher died" in err
    assert "hydra/launcher=layerlab survives a dead worker" in err
    # Then the summary, as for any failed sweep: what finished, and the command that completes the sweep.
    summary = out[out.rindex("layerlab: sweep ") :]
    finished = int(summary.split(" jobs finished")[0].split()[-1].split("/")[0])
    assert finished < 4 and "complete the sweep (only the jobs without a FINISHED run):" in summary
    started = int(summary.split(" jobs finished")[0].split("/")[-1])
    if started < 4:  # the jobs the lost batch never started are counted against the plan
        assert f"and {4 - started} of the 4 planned never started" in summary
    assert "KILLED: its run was still RUNNING when the sweep ended" in summary or "FAILED" in summary
    complete = next(line.strip() for line in out.splitlines() if "sweep.skip_finished=true" in line)
    assert complete.startswith("python runner.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 ")
    exp = client.get_experiment_by_name("joblib_killed").experiment_id
    (parent,) = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'parent'")
    assert parent.info.status == "FAILED"
    jobs = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'job'")
    assert victim.info.run_id in {r.info.run_id for r in jobs}
    assert all(r.info.status != "RUNNING" for r in jobs)  # the lost batch's runs are closed, none left RUNNING
    assert client.get_run(victim.info.run_id).info.status in ("KILLED", "FAILED")


@pytest.mark.slow
def test_sigkill_of_the_sweep_process_leaves_no_parent_running(tmp_path, store):
    """The sweep's own process dies (SIGKILL): the next check closes its parent FAILED with the completing command."""
    sweep = ["-m", *LONG, "training.epochs=8", f"tracking.uri={store}", "tracking.experiment=orphaned", "seed=0,1"]
    client = mlflow.MlflowClient(store)  # the store is created here, before the sweep: two first users race
    proc = _popen(sweep, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for_running_job(client, "orphaned", proc)  # the basic launcher: the job runs in the sweep's process
    exp = client.get_experiment_by_name("orphaned").experiment_id
    (parent,) = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'parent'")
    assert parent.info.status == "RUNNING" and parent.data.tags.get(tags.HEARTBEAT)  # the parent beats too
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)

    closed = close_lost(store, [exp])  # what the next run, sweep or `python -m experiments.doctor` does
    assert parent.info.run_id in {r.run_id for r in closed}
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FAILED"
    error = parent.data.tags[tags.ERROR]
    assert error.startswith("process lost; last heartbeat at ")
    assert "complete the sweep" in error and "sweep.skip_finished=true" in error and "seed=0,1" in error
    assert client.search_runs([exp], "attributes.status = 'RUNNING'") == []  # its running job is closed too


def test_ledger_rows_and_completing_command(tmp_path):
    from experiments.launching.ledger import completing_command, unstarted_rows, write_ledger
    from hydra_plugins.layerlab_launcher._pool import death_reason

    write_ledger(
        tmp_path,
        {
            0: {"overrides": ["seed=0"], "state": "done", "error": ""},
            1: {"overrides": ["seed=1"], "state": "lost", "error": death_reason(-9)},
            2: {"overrides": ["seed=2"], "state": "queued", "error": ""},
        },
        ["hydra/launcher=layerlab", "hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path}"],
    )
    rows = {r["job"]: r for r in unstarted_rows(tmp_path, seen_jobs={"0"})}
    assert set(rows) == {"1", "2"}
    assert rows["1"]["status"] == "FAILED" and "killed by signal 9 (SIGKILL); out of memory?" in rows["1"]["error"]
    assert rows["2"]["status"] == "NOT STARTED" and rows["2"]["rerun"] == "python runner.py seed=2"
    assert completing_command(["seed=0,1,2", "model.activation=abs,relu"], ["hydra/launcher=layerlab"]) == (
        "python runner.py -m hydra/launcher=layerlab seed=0,1,2 model.activation=abs,relu sweep.skip_finished=true"
    )
    assert "exited with code 3" in death_reason(3) and "SIGTERM" in death_reason(-15)


def test_a_retried_attempt_is_not_a_failed_job():
    from experiments.sweeps.finalize import RETRIED, mark_retried

    rows = [
        {"job": "1", "status": "FAILED", "error": "process lost"},
        {"job": "1", "status": "FINISHED", "error": ""},
        {"job": "2", "status": "FAILED", "error": "boom"},
    ]
    mark_retried(rows)
    assert [r["status"] for r in rows] == [RETRIED, "FINISHED", "FAILED"]
    assert rows[0]["error"] == "FAILED, then retried and FINISHED: process lost"


@pytest.mark.slow
def test_sigkill_of_a_ray_worker_loses_one_attempt_and_the_sweep_finishes(tmp_path, store):
    """Ray retries a task whose worker died: the lost attempt's run ends FAILED with the reason, the job finishes."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep = [
        "-m",
        "hydra/launcher=ray_local",
        *LONG,
        f"tracking.uri={store}",
        "tracking.experiment=ray_killed",
        "seed=0,1,2,3",
        "sweep.compare=false",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "LAYERLAB_RAY_CPUS": "2"}
    client = mlflow.MlflowClient(store)  # the store is created here, before the sweep: two first users race
    proc = _popen(sweep, tmp_path, env)
    victim = _wait_for_running_job(client, "ray_killed", proc, timeout=600)  # Ray's start on a loaded machine
    os.kill(int(victim.data.tags[tags.PID]), signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    (tmp_path / "sweep_out.txt").write_text(out + "\n----- stderr\n" + err)
    assert proc.returncode == 0, err[-3000:]
    exp = client.get_experiment_by_name("ray_killed").experiment_id
    jobs = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'job'")
    finished = [r for r in jobs if r.info.status == "FINISHED"]
    assert sorted(r.data.tags[tags.JOB_NUM] for r in finished) == ["0", "1", "2", "3"]
    (lost,) = [r for r in jobs if r.info.status != "FINISHED"]
    assert lost.info.run_id == victim.info.run_id and lost.info.status == "FAILED"
    assert lost.data.tags[tags.ERROR].startswith("process lost; last heartbeat at ")
    assert "FINISHED: 4/4 jobs finished" in out
    (parent,) = client.search_runs([exp], f"tags.`{tags.ROLE}` = 'parent'")
    assert parent.info.status == "FINISHED"
    names = {r.info.run_name for r in finished}
    assert names == {f"seed={i}" for i in range(4)}, names  # named by what differs, whatever Ray did to the values
