"""A team server that keeps strangers out (issue 21, item 4), against the real stack.

``scripts/mlflow_stack.sh start --auth`` runs PostgreSQL and MLflow's basic-auth app in a private
state folder on free ports; ``adduser`` creates two users, alice and mallory. Then, each through
``runner.py -m`` in a subprocess with the credentials in ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``:

* alice logs a 2-job sweep into an experiment of her own (its creator may write to it);
* mallory, who may only read it (the stack's default permission, READ), and mallory on an
  experiment the admin denied her (DENY), and alice with a wrong password each get one
  ``layerlab: error:`` paragraph naming the URI and the fix, exit status 2, and no run is logged;
* no password, the Flask secret key or the database password is in any param, tag or artifact of
  any run, in the sweeps' output folders, in the state folder's logs, or in ``ps -eo args`` sampled
  while the sweeps ran.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.conftest import ROOT
from tests.mlflow_stack_helpers import env as stack_child_env
from tests.mlflow_stack_helpers import running_stack, stack, tail

pytestmark = pytest.mark.slow  # a real server and real sweeps: `pytest -m "not slow"` skips them

SWEEP = ["model.activation=abs,relu", "training.epochs=1", "dataset.limit=300"]
OWN_EXPERIMENT = "auth_alice"
DENIED_EXPERIMENT = "auth_private"
SWEEP_TIMEOUT = 600
# Credentials of the process running the tests must not reach the sweeps under test.
CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
PS_SAMPLES: list[str] = []  # `ps -eo args` while the sweeps of this module ran
SWEEP_DIRS: list[Path] = []


def _ps() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=30).stdout


def _sweep(uri: str, experiment: str, user: str, password: str) -> subprocess.CompletedProcess:
    """``runner.py -m`` as ``user`` against ``uri``, sampling the process list while it runs."""
    sweep_dir = Path(tempfile.mkdtemp(prefix="layerlab-auth-sweep-"))
    SWEEP_DIRS.append(sweep_dir)
    child_env = {k: v for k, v in stack_child_env().items() if k not in CREDENTIAL_ENV}
    child_env.update(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=password)
    cmd = [
        sys.executable,
        str(ROOT / "runner.py"),
        "-m",
        *SWEEP,
        "tracking=server",
        f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + SWEEP_TIMEOUT
        while proc.poll() is None:
            PS_SAMPLES.append(_ps())
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"{' '.join(cmd)} ran over {SWEEP_TIMEOUT} s")
            time.sleep(0.5)
        out.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), "")


def _admin_client(stack_info) -> mlflow.MlflowClient:
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=stack_info["admin_password"])
    return mlflow.MlflowClient(stack_info["uri"])


def _all_runs(client) -> list:
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps], max_results=5000) if exps else []


def _assert_one_paragraph_refusal(proc, uri: str, *needles: str) -> None:
    out = proc.stdout
    assert proc.returncode == 2, f"exit status {proc.returncode}\n{tail(proc)}"
    errors = [line for line in out.splitlines() if line.startswith("layerlab: error:")]
    assert len(errors) == 1, tail(proc)
    for needle in (uri, "nothing was logged", *needles):
        assert needle in errors[0], f"{needle!r} not in: {errors[0]}"
    assert "Traceback" not in out, tail(proc)
    assert "parent run" not in out, tail(proc)  # the sweep stopped before its parent run


@pytest.fixture(scope="module")
def auth_stack():
    saved = {k: os.environ.get(k) for k in CREDENTIAL_ENV}
    with running_stack(start_args=("--auth",)) as info:
        services = info["services"]
        assert "authentication on" in info["start"].stdout, tail(info["start"])
        info["admin_password"] = (services / "mlflow_admin_password").read_text().strip()
        info["secret_key"] = (services / "mlflow_secret_key").read_text().strip()
        info["users"] = {}
        for name in ("alice", "mallory"):
            added = stack("adduser", info["env"], timeout=180, args=(name,))
            assert added.returncode == 0, tail(added)
            pw_file = services / "users" / f"{name}.password"
            assert str(pw_file) in added.stdout
            info["users"][name] = pw_file.read_text().strip()
            assert info["users"][name] not in added.stdout + added.stderr
        try:
            yield info
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            for sweep_dir in SWEEP_DIRS:
                shutil.rmtree(sweep_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def alice_sweep(auth_stack):
    proc = _sweep(auth_stack["uri"], OWN_EXPERIMENT, "alice", auth_stack["users"]["alice"])
    assert proc.returncode == 0, tail(proc)
    return proc


def test_secrets_are_0600_files_and_strangers_get_401(auth_stack):
    services = auth_stack["services"]
    users = services / "users"
    for path in (
        services / "mlflow_admin_password",
        services / "mlflow_secret_key",
        services / "mlflow_auth.ini",
        services / "mlflow_auth.db",
        users / "alice.password",
        users / "mallory.password",
    ):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert users.stat().st_mode & 0o777 == 0o700
    assert auth_stack["admin_password"] not in (services / "mlflow_auth.ini").read_text()
    status = stack("status", auth_stack["env"], timeout=60)
    assert status.returncode == 0 and "authentication on" in status.stdout, tail(status)
    with urllib.request.urlopen(f"{auth_stack['uri']}/health", timeout=30) as resp:
        assert resp.status == 200  # health stays open: the script and load balancers probe it
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{auth_stack['uri']}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
    assert refused.value.code == 401
    again = stack("adduser", auth_stack["env"], timeout=180, args=("alice",))
    assert again.returncode != 0 and "exists already" in again.stderr, tail(again)


def test_a_user_with_permission_logs_a_sweep(auth_stack, alice_sweep):
    client = _admin_client(auth_stack)
    exp = client.get_experiment_by_name(OWN_EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("layerlab.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.params["model.activation"] for r in children) == ["abs", "relu"]
    assert [r.info.status for r in children] == ["FINISHED"] * 2
    assert {r.data.tags.get("mlflow.user") for r in children} == {"alice"}  # the server's login, not the OS user


def test_a_read_only_user_gets_one_paragraph_and_logs_nothing(auth_stack, alice_sweep):
    client = _admin_client(auth_stack)
    before = {r.info.run_id for r in _all_runs(client)}
    proc = _sweep(auth_stack["uri"], OWN_EXPERIMENT, "mallory", auth_stack["users"]["mallory"])
    _assert_one_paragraph_refusal(
        proc, auth_stack["uri"], "'mallory'", "HTTP 403", "write to", "ask an admin", "MLFLOW_TRACKING_USERNAME"
    )
    assert {r.info.run_id for r in _all_runs(_admin_client(auth_stack))} == before

    # What the message tells the user to ask for: the admin grants EDIT, and mallory may write.
    from mlflow.server.auth.client import AuthServiceClient

    exp_id = client.get_experiment_by_name(OWN_EXPERIMENT).experiment_id
    AuthServiceClient(auth_stack["uri"]).grant_user_permission("mallory", "experiment", exp_id, "EDIT")
    os.environ.update(MLFLOW_TRACKING_USERNAME="mallory", MLFLOW_TRACKING_PASSWORD=auth_stack["users"]["mallory"])
    as_mallory = mlflow.MlflowClient(auth_stack["uri"])
    run = as_mallory.create_run(exp_id, run_name="granted")
    as_mallory.set_terminated(run.info.run_id, "FINISHED")
    assert run.info.run_id not in before


def test_a_user_denied_the_experiment_gets_one_paragraph_and_logs_nothing(auth_stack):
    from mlflow.server.auth.client import AuthServiceClient

    client = _admin_client(auth_stack)
    exp_id = client.create_experiment(DENIED_EXPERIMENT)
    AuthServiceClient(auth_stack["uri"]).grant_user_permission("mallory", "experiment", exp_id, "DENY")
    before = {r.info.run_id for r in _all_runs(client)}
    proc = _sweep(auth_stack["uri"], DENIED_EXPERIMENT, "mallory", auth_stack["users"]["mallory"])
    _assert_one_paragraph_refusal(proc, auth_stack["uri"], "HTTP 403", "read or create", "ask an admin")
    assert {r.info.run_id for r in _all_runs(_admin_client(auth_stack))} == before


def test_a_wrong_password_gets_one_paragraph_and_logs_nothing(auth_stack):
    client = _admin_client(auth_stack)
    before = {r.info.run_id for r in _all_runs(client)}
    wrong = "wrong-" + secrets.token_hex(8)
    auth_stack["wrong_password"] = wrong
    proc = _sweep(auth_stack["uri"], OWN_EXPERIMENT, "alice", wrong)
    _assert_one_paragraph_refusal(proc, auth_stack["uri"], "HTTP 401", "'alice'", "MLFLOW_TRACKING_PASSWORD", "adduser")
    assert {r.info.run_id for r in _all_runs(_admin_client(auth_stack))} == before


def test_no_secret_in_params_tags_artifacts_outputs_logs_or_process_list(auth_stack, alice_sweep, tmp_path):
    services = auth_stack["services"]
    found_secrets = {
        "admin password": auth_stack["admin_password"],
        "Flask secret key": auth_stack["secret_key"],
        "database password": auth_stack["password"],
        **{f"{name}'s password": pw for name, pw in auth_stack["users"].items()},
    }
    if "wrong_password" in auth_stack:
        found_secrets["the wrong password"] = auth_stack["wrong_password"]
    PS_SAMPLES.append(_ps())
    client = _admin_client(auth_stack)
    runs = _all_runs(client)
    assert runs, "no runs to search"
    texts: dict[str, bytes] = {}
    for run in runs:
        texts[f"run {run.info.run_id} params+tags"] = repr((run.data.params, run.data.tags)).encode()
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, dst_path=str(tmp_path / run.info.run_id), tracking_uri=auth_stack["uri"]
            )
        )
        texts.update({str(p): p.read_bytes() for p in local.rglob("*") if p.is_file()})
    secret_files = {
        services / "mlflow_admin_password",
        services / "mlflow_secret_key",
        services / "pgpass",
        services / "pg_password",
        services / "pg_superuser_password",
    }
    data_dir = services / "postgres" / "data"  # the database's own files (binary; the role's password is hashed)
    for path in services.rglob("*"):
        if (
            path.is_file()
            and path not in secret_files
            and services / "users" not in path.parents
            and data_dir not in path.parents
        ):
            texts[str(path)] = path.read_bytes()
    assert any(name.endswith("mlflow.log") for name in texts)
    for sweep_dir in SWEEP_DIRS:
        texts.update({str(p): p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()})
    texts["ps -eo args"] = "\n".join(PS_SAMPLES).encode()
    assert len(PS_SAMPLES) > 1
    leaks = [
        (what, where)
        for what, secret in found_secrets.items()
        for where, text in texts.items()
        if secret.encode() in text
    ]
    assert not leaks, f"secrets found: {leaks}"
