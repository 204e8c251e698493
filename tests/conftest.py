"""Shared helpers: the real CLI in a subprocess, Hydra compose in-process, a temp MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Tests never touch the network, and TF's start-up chatter is noise here.
os.environ.setdefault("LAYERLAB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_RUN_ID", None)

# Small, fast settings for real training runs in tests.
TINY = ["dataset.limit=400", "training.epochs=2", "training.batch_size=128"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a test's own server)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, tmp_path: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python runner.py ARGS`` in the project root, outputs kept under ``tmp_path``."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    hydra_dirs = [f"hydra.run.dir={tmp_path}/outputs/run", f"hydra.sweep.dir={tmp_path}/multirun"]
    return subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *args, *hydra_dirs],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch):
    """`mlflow.set_tracking_uri` in one test exports MLFLOW_TRACKING_URI; never let it reach the next."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)


@pytest.fixture
def store(tmp_path) -> str:
    """A fresh SQLite MLflow store in the test's temp folder (its URI)."""
    return f"sqlite:///{tmp_path}/mlflow.db"


def compose(*overrides: str):
    """The composed config exactly as ``runner.py`` gets it (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


@pytest.fixture(autouse=True, scope="session")
def _nothing_lands_in_the_project_root():
    """A test that creates an MLflow experiment without an artifact location writes to ./mlruns in the project
    root, whose mere presence flips a plain `mlflow ui` there to the (refused) file store: fail the session."""
    before = (ROOT / "mlruns").exists()
    yield
    assert before or not (ROOT / "mlruns").exists(), "a test wrote ./mlruns into the project root"


def pytest_collection_modifyitems(config, items):
    """Files with end-to-end (slow) tests first, the quick files last. `make test` hands whole files to two
    pytest-xdist workers in this order, so the many short files fill the end of the run on both workers instead
    of one worker finishing a long file alone (measured: the last end-to-end file kept one core idle)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # a stable sort: each file keeps its order
