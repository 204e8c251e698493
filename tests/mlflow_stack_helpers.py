"""The team tracking stack of scripts/mlflow_stack.sh for tests: private state folder, free loopback ports.

Shared by tests/test_scale_out.py (a 4-job sweep against the stack) and tests/test_server_load.py
(32 jobs through 4 workers). :func:`running_stack` starts PostgreSQL and the MLflow server, yields
where they listen, and always stops both at the end (asserting that their ports are closed again); a
machine that cannot get PostgreSQL or psycopg2 (exit status 4 of the script) skips the test instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

SCRIPT = ROOT / "scripts" / "mlflow_stack.sh"
# Inherited from a surrounding sweep or shell, these would redirect or re-parent the runs under test.
LEAKY_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "LAYERLAB_PG_PASSWORD",
    "LAYERLAB_SERVICES_DIR",
    "RAY_ADDRESS",
)


def env(**extra: str) -> dict:
    """The environment for a child process: this one's, minus what would redirect its runs, plus ``extra``."""
    out = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    out.update({"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **extra})
    return out


def tail(proc, n: int = 6000) -> str:
    return f"--- stdout ---\n{(proc.stdout or '')[-n:]}\n--- stderr ---\n{(proc.stderr or '')[-n:]}"


def listen_hosts(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp*)."""
    hosts = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                if width == 8:
                    hosts.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8))
                    hosts.add(socket.inet_ntop(socket.AF_INET6, raw))
    return hosts


def stack(cmd: str, stack_env: dict, timeout: int = 300, args: tuple = ()) -> subprocess.CompletedProcess:
    """``scripts/mlflow_stack.sh CMD ARGS`` with ``stack_env``."""
    return subprocess.run(
        ["bash", str(SCRIPT), cmd, *args], cwd=ROOT, env=stack_env, capture_output=True, text=True, timeout=timeout
    )


@contextlib.contextmanager
def running_stack(password: str | None = None, start_args: tuple = (), **extra_env: str):
    """The stack in a private state folder on free ports; stopped (ports closed, folder removed) at the end.

    The state folder is made with mkdtemp under /tmp, not pytest's tmp_path: run as root, the cluster
    belongs to the `postgres` user, which cannot traverse pytest's 0700 base folder. Yields a dict:
    uri, services, env, pg_port, mlflow_port, password, start (the completed start command), start_s.
    ``start_args``: what follows ``start`` (``("--auth",)``: the server with users and passwords).
    """
    services = Path(tempfile.mkdtemp(prefix="layerlab-svc-", dir="/tmp"))
    password = password or secrets.token_hex(12)
    pg_port, mlflow_port = free_port(), free_port()
    stack_env = env(
        LAYERLAB_SERVICES_DIR=str(services),
        LAYERLAB_PG_PORT=str(pg_port),
        LAYERLAB_MLFLOW_PORT=str(mlflow_port),
        LAYERLAB_PG_PASSWORD=password,
        **extra_env,
    )
    if "LAYERLAB_VENV" not in stack_env and not (ROOT / ".venv").exists() and sys.prefix != sys.base_prefix:
        stack_env["LAYERLAB_VENV"] = sys.prefix  # a checkout without its own .venv: the tests' virtualenv
    t0 = time.perf_counter()
    started = stack("start", stack_env, args=start_args)
    start_s = time.perf_counter() - t0
    try:
        if started.returncode == 4:
            pytest.skip(
                "the MLflow stack cannot be set up on this machine: "
                + (started.stderr.strip().splitlines() or ["(no message)"])[-1]
            )
        assert started.returncode == 0, f"mlflow_stack.sh start exited {started.returncode}\n{tail(started)}"
        uri = stack("uri", stack_env).stdout.strip()
        yield {
            "uri": uri,
            "services": services,
            "env": stack_env,
            "pg_port": pg_port,
            "mlflow_port": mlflow_port,
            "password": password,
            "start": started,
            "start_s": start_s,
        }
    finally:
        stopped = stack("stop", stack_env, timeout=180)
        try:
            assert stopped.returncode == 0, f"mlflow_stack.sh stop exited {stopped.returncode}\n{tail(stopped)}"
            for port in (pg_port, mlflow_port):
                assert not listen_hosts(port), f"port {port} still listening after stop"
        finally:
            shutil.rmtree(services, ignore_errors=True)
