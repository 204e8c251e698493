"""Sweeps at the machine's speed (issue 16): what keeps the serial part of a parallel sweep small.

* the sweep's parent never imports TensorFlow or Keras (its workers do), and
  Hydra's import of the sweep callback does not import MLflow either;
* a joblib sweep's workers are warmed while the parent sets up, and the
  launcher's own ``joblib.Parallel`` call reuses exactly those processes;
* the garbage collector skips the libraries' objects after the first job;
* a joblib sweep's parent leaves no worker behind when it exits early
  (fast exit), and its workers' TensorFlow start-up lines are filtered.

Real processes and a real joblib pool, no mocks; timings are in
``bench/sweep_vs_shell.py`` and ``bench/sweep_profile.py``, never here.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent


def _imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return set(out.split())


def test_the_parent_side_never_imports_tensorflow_keras_or_mlflow_at_start():
    mods = _imported_after(
        "import experiments.sweeps.callback, hydra_plugins.layerlab_optuna.optuna_sweeper, "
        "hydra_plugins.layerlab_launcher.layerlab_launcher"
    )
    assert not {"tensorflow", "keras", "mlflow"} & mods, {"tensorflow", "keras", "mlflow"} & mods
    # the Optuna study helpers the sweeper uses carry no Keras either
    assert "keras" not in _imported_after("import experiments.training.pruning_study")


def test_joblib_settings_mirror_the_launcher_and_ignore_other_launchers():
    from experiments.launching.warm import JOBLIB_LAUNCHER, joblib_settings

    node = OmegaConf.create(
        {
            "_target_": JOBLIB_LAUNCHER,
            "n_jobs": 2,
            "backend": None,
            "prefer": "processes",
            "pre_dispatch": "2*n_jobs",
            "batch_size": "auto",
            "max_nbytes": "1000",
            "mmap_mode": "r",
        }
    )
    settings = joblib_settings(node)
    assert settings["backend"] == "loky" and settings["n_jobs"] == 2 and "_target_" not in settings
    assert settings["max_nbytes"] == 1000 and settings["pre_dispatch"] == "2*n_jobs"
    assert (
        joblib_settings(OmegaConf.create({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}))
        is None
    )
    assert joblib_settings(None) is None


def test_the_heap_is_frozen_once_per_process():
    from experiments.process import freeze_imported_heap

    freeze_imported_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    junk = [object() for _ in range(1000)]
    freeze_imported_heap()  # a second job: nothing new is frozen (its garbage stays collectable)
    # at most as many: a frozen object that another thread of this test process frees leaves the count
    assert gc.get_freeze_count() <= frozen
    del junk


@pytest.mark.slow
def test_warm_workers_are_the_ones_the_launcher_call_reuses():
    from joblib import Parallel, delayed

    from experiments.launching.warm import JOBLIB_LAUNCHER, release_joblib_workers, warm_workers

    node = OmegaConf.create(
        {
            "_target_": JOBLIB_LAUNCHER,
            "n_jobs": 2,
            "backend": None,
            "prefer": "processes",
            "require": None,
            "verbose": 0,
            "timeout": None,
            "pre_dispatch": "2*n_jobs",
            "batch_size": "auto",
            "temp_folder": None,
            "max_nbytes": None,
            "mmap_mode": "r",
        }
    )
    warm = warm_workers(node)
    warm.wait()
    assert len(warm.pids) == 2 and all(pid != os.getpid() for pid in warm.pids)
    from experiments.launching.warm import joblib_settings

    used = set(Parallel(**joblib_settings(node))(delayed(os.getpid)() for _ in range(6)))
    assert used <= set(warm.pids), (used, warm.pids)  # same processes: TensorFlow was imported there already
    release_joblib_workers()


def _processes_with(mark: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"LAYERLAB_TEST_MARK={mark}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_joblib_sweep_exits_fast_leaving_no_worker_and_no_startup_noise(tmp_path):
    mark = uuid.uuid4().hex
    env = {**os.environ, "LAYERLAB_TEST_MARK": mark, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("LAYERLAB_DEBUG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "runner.py",
            "-m",
            "model.activation=abs,relu",
            "training.epochs=1",
            "dataset.limit=600",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
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
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "2/2 jobs finished" in out
    assert (tmp_path / "multirun" / "comparison" / "comparison.md").exists()
    # the workers' TensorFlow import is filtered like the parent's (process.NOISE)
    for noise in ("All log messages before absl::InitializeLog", "cudart_stub.cc", "port.cc", "cuda_platform.cc"):
        assert noise not in out, noise
    # fast exit: the parent shut its joblib workers down first; nothing of the sweep is still running
    assert _processes_with(mark) == []
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        statuses = dict(
            db.execute(
                "SELECT t.value, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "AND t.key = 'layerlab.role' WHERE t.value = 'parent'"
            ).fetchall()
        )
        # the jobs' pids (the parent run beats from the sweep's own process, so its pid tag is the parent's)
        pids = {
            v
            for (v,) in db.execute(
                "SELECT p.value FROM tags p JOIN tags r ON r.run_uuid = p.run_uuid "
                "AND r.key = 'layerlab.role' AND r.value = 'job' WHERE p.key = 'layerlab.pid'"
            )
        }
    assert statuses == {"parent": "FINISHED"}
    # the jobs ran in worker processes, not in the parent
    assert pids and str(proc.pid) not in pids
