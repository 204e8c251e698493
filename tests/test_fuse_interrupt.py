"""Ctrl-C of a fused sweep (sweep.fuse_replicates=true), for real: every replica's run ends KILLED with the command
that resumes it alone from its own checkpoint, and that command finishes the run.

The sweep runs in its own session so that the test can send SIGINT to its whole process group, as a terminal's
Ctrl-C does (under hydra/launcher=layerlab the spawned worker that trains gets it too, as it would in a terminal).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from experiments.tracking import tags
from tests.conftest import ROOT
from tests.liveness import wait_until

pytestmark = pytest.mark.slow  # real sweeps and a real resume

SEEDS = (0, 1, 2)
EPOCHS = 40  # far more than the test waits for: the fit is still running when Ctrl-C comes
SWEEP = [
    "model=lambda_mlp",
    f"seed={','.join(map(str, SEEDS))}",
    "sweep.fuse_replicates=true",
    "dataset.limit=2000",
    f"training.epochs={EPOCHS}",
    "training.batch_size=64",
    "training.checkpoint.every_s=0",
    "tracking.log_model=false",
    "tracking.log_plots=false",
    "sweep.compare=false",
]
LIVENESS_S = 600  # a bound for a loaded machine, never a speed check


def _replicas_training(client, exp_name: str):
    """Every replica's run, once each is RUNNING with at least one epoch logged (else None)."""
    exp = client.get_experiment_by_name(exp_name)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = '{tags.ROLE_JOB}'")
    if len(runs) < len(SEEDS):
        return None
    if all(r.info.status == "RUNNING" and client.get_metric_history(r.info.run_id, "loss") for r in runs):
        return runs
    return None


def _loss_steps(client, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "loss"))


@pytest.mark.parametrize("launcher", ["basic", "layerlab"])
def test_ctrl_c_of_a_fused_sweep_kills_every_replica_with_its_own_resume_command(tmp_path, store, launcher):
    experiment = f"fused_ctrl_c_{launcher}"
    client = mlflow.MlflowClient(store)  # the store is created here, before the sweep: two first users race
    client.search_experiments()
    sweep = [
        sys.executable,
        str(ROOT / "runner.py"),
        "-m",
        f"hydra/launcher={launcher}",
        *SWEEP,
        f"tracking.uri={store}",
        f"tracking.experiment={experiment}",
        f"hydra.sweep.dir={tmp_path}/multirun",
    ]
    if launcher == "layerlab":
        sweep.append("hydra.launcher.n_jobs=1")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        sweep, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_until(
            lambda: _replicas_training(client, experiment),
            proc,
            LIVENESS_S,
            "every replica RUNNING with a logged epoch",
        )
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground process group
        out, err = proc.communicate(timeout=LIVENESS_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    (tmp_path / "sweep_out.txt").write_text(out + "\n----- stderr\n" + err)
    assert proc.returncode == 130, out[-3000:] + err[-3000:]  # the project's Ctrl-C exit code (docs/troubleshooting.md)
    assert "Traceback" not in out + err  # no launcher worker's traceback either
    assert " LOST " not in out and "out of memory" not in out  # the display knows the job was interrupted

    exp_id = client.get_experiment_by_name(experiment).experiment_id
    (parent,) = client.search_runs([exp_id], f"tags.`{tags.ROLE}` = '{tags.ROLE_PARENT}'")
    assert parent.info.status == "KILLED"
    runs = client.search_runs([exp_id], f"tags.`{tags.ROLE}` = '{tags.ROLE_JOB}'")
    assert sorted(int(r.data.params["seed"]) for r in runs) == list(SEEDS)
    commands = {}
    for run in runs:
        seed, run_id = int(run.data.params["seed"]), run.info.run_id
        assert run.info.status == "KILLED", (seed, run.info.status, run.data.tags.get(tags.ERROR))
        assert run.data.tags[tags.FUSED_GROUP] == f"job 0 seeds {','.join(map(str, SEEDS))}"
        done = _loss_steps(client, run_id)
        assert 1 <= len(done) < EPOCHS and done == list(range(len(done)))
        # Its own checkpoint, in its own folder, of exactly the epochs its run logged.
        folder = Path(run.data.tags[tags.OUTPUT_DIR])
        assert folder.name == f"seed{seed}"
        state = json.loads((folder / "checkpoints/state.json").read_text())
        assert state == {"epochs_done": len(done), "run_id": run_id}
        assert (folder / "checkpoints/last.keras").is_file()
        # The solo job's message (experiments/job/tracked.py), in the error tag and in error.txt.
        error = run.data.tags[tags.ERROR]
        assert error.startswith("interrupted (") and f"after {len(done)} completed epoch(s); resume with: " in error
        command = error.split("resume with: ", 1)[1]
        words = shlex.split(command)
        assert words[:2] == ["python", "runner.py"] and words[-1] == f"training.resume={run_id}"
        assert f"seed={seed}" in words and "-m" not in words  # its solo job's overrides: no sweep, its own seed
        assert not any(w.startswith(("sweep.fused_seeds", "sweep.fused_jobs")) for w in words)
        text = Path(client.download_artifacts(run_id, "error.txt", str(tmp_path / run_id))).read_text()
        assert command in text
        commands[seed] = (run_id, words, len(done))

    # One replica's printed command, run alone, continues its run to the end from its own checkpoint.
    run_id, words, done = commands[SEEDS[1]]
    resumed = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *words[2:], f"hydra.run.dir={tmp_path}/resume"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIVENESS_S,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming run {run_id} after epoch {done}" in resumed.stdout
    again = client.get_run(run_id)
    assert again.info.status == "FINISHED" and again.data.tags[tags.RESUMED] == "true"
    assert _loss_steps(client, run_id) == list(range(EPOCHS))  # every epoch once: none repeated, none skipped
    assert "test_sparse_categorical_accuracy" in again.data.metrics
    others = [client.get_run(commands[s][0]).info.status for s in SEEDS if s != SEEDS[1]]
    assert others == ["KILLED", "KILLED"]  # resumed alone: the other replicas are untouched
