"""Beyond one machine on existing engines (issue 7): a team MLflow server on PostgreSQL, Ray, submitit.

Every test drives ``runner.py -m`` in a subprocess, as a user would, on one 2x2 sweep (activation
abs/relu x seed 0/1, one epoch on 300 digits) and reads the runs back with ``MlflowClient``:

* (a) ``scripts/mlflow_stack.sh start`` brings up PostgreSQL and an MLflow server (private state
  folder and free ports, stopped at the end of the session); a parallel joblib sweep logs 4 FINISHED
  children under 1 parent there, read back through the server's REST API; the rows are in
  PostgreSQL, the artifacts (the Keras model too) in the server's artifact folder;
* (b) the Ray launcher (``hydra/launcher=ray_cluster``, on a Ray head node this module starts on
  127.0.0.1 with 2 CPUs) gives the same runs and params as the basic launcher, and with
  ``training.deterministic=true`` the same metrics up to rounding (relative 1e-4: thread counts differ);
* (c) the same for ``hydra/launcher=submitit_local`` (submitit's stand-in for SLURM).

Nothing is written into the repository: stores, artifacts, sweep folders, the database and Ray's
session folder are temporary. A test whose engine cannot be installed here skips with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, free_port
from tests.mlflow_stack_helpers import env as _env
from tests.mlflow_stack_helpers import listen_hosts as _listen_hosts
from tests.mlflow_stack_helpers import running_stack
from tests.mlflow_stack_helpers import stack as _stack
from tests.mlflow_stack_helpers import tail as _tail

pytestmark = pytest.mark.slow  # real CLI processes: `pytest -m "not slow"` skips them

SWEEP = ["model.activation=abs,relu", "seed=0,1", "training.epochs=1", "dataset.limit=300"]
JOBS = [("abs", "0"), ("abs", "1"), ("relu", "0"), ("relu", "1")]
SWEEP_TIMEOUT = 420
# training.deterministic=true across launchers: equal up to rounding (the README states this tolerance).
CROSS_LAUNCHER_RTOL = 1e-4


# ---------------------------------------------------------------------------------------- helpers


def _require(module: str, extra: str, package: str) -> None:
    """Skip, naming what is missing, when an optional engine is not installed in this interpreter."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError) as exc:
        found, why = False, f"{type(exc).__name__}: {exc}"
    else:
        why = f"module {module} not found"
    if not found:
        pytest.skip(
            f"{package} is not installed in {sys.prefix} ({why}); install it with `pip install -e '.[{extra}]'`"
        )


def _sweep(*overrides: str, sweep_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python runner.py -m OVERRIDES hydra.sweep.dir=SWEEP_DIR``; asserts exit status 0."""
    cmd = [sys.executable, str(ROOT / "runner.py"), "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(**(env or {})), capture_output=True, text=True, timeout=SWEEP_TIMEOUT)
    proc.wall_s = time.perf_counter() - t0
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{_tail(proc)}"
    return proc


def _sweep_runs(client, experiment: str, sweep_dir: Path):
    """(parent run, its children) of the sweep that wrote into ``sweep_dir``, checked for stray runs."""
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    here = str(Path(sweep_dir).resolve())
    parents = [
        r
        for r in runs
        if r.data.tags.get("layerlab.role") == "parent" and r.data.tags.get("layerlab.sweep_dir") == here
    ]
    assert len(parents) == 1, f"{len(parents)} parent runs for {here}"
    parent = parents[0]
    # Every job run of this sweep (found by its output folder, which is tagged whatever the environment
    # the job got) must be a child of the parent: a job whose launcher lost the sweep's environment
    # would log a detached run here.
    jobs = [
        r
        for r in runs
        if r.data.tags.get("layerlab.role") == "job"
        and r.data.tags.get("layerlab.output_dir", "").startswith(here + os.sep)
    ]
    detached = [r.info.run_id for r in jobs if r.data.tags.get("mlflow.parentRunId") != parent.info.run_id]
    assert not detached, f"job runs not under the sweep's parent run: {detached}"
    children = client.search_runs(
        [exp.experiment_id], max_results=1000, filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert sorted(r.info.run_id for r in children) == sorted(r.info.run_id for r in jobs)
    return parent, children


def _by_job(children) -> dict:
    return {(r.data.params["model.activation"], r.data.params["seed"]): r for r in children}


def _check_sweep(parent, children) -> None:
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics.get("jobs_finished") == 4 and parent.data.metrics.get("jobs_failed") == 0
    assert sorted(_by_job(children)) == JOBS
    assert [r.info.status for r in children] == ["FINISHED"] * 4
    for r in children:
        assert r.data.tags["layerlab.sweep_id"] == parent.data.tags["layerlab.sweep_id"]
        assert r.data.tags.get("layerlab.model_uri", "").startswith("models:/")
        assert "test_sparse_categorical_accuracy" in r.data.metrics


def _assert_same_as_basic(basic_children, other_children, launcher: str) -> None:
    """Same jobs, same params, same config hashes; same metrics except wall-clock ones."""
    base, other = _by_job(basic_children), _by_job(other_children)
    assert sorted(other) == sorted(base) == JOBS
    for job in JOBS:
        b, o = base[job], other[job]
        assert o.data.params == b.data.params, f"{launcher} {job}: params differ"
        assert o.data.tags["layerlab.config_hash"] == b.data.tags["layerlab.config_hash"]
        mb = {k: v for k, v in b.data.metrics.items() if "time" not in k}
        mo = {k: v for k, v in o.data.metrics.items() if "time" not in k}
        assert set(mo) == set(mb), f"{launcher} {job}: metric names differ"
        # What training.deterministic=true promises across launchers (README, "Scaling out"): the same
        # seeds, data order and initial weights, so the same numbers up to floating-point rounding. Not
        # bit-equal: each launcher gives a job its own TensorFlow thread count, which changes the order of
        # the sums (measured: a loss of 2.4934258 under Ray against 2.4934256 under the basic launcher).
        diff = {k: (mb[k], mo[k]) for k in mb if mo[k] != pytest.approx(mb[k], rel=CROSS_LAUNCHER_RTOL, abs=1e-6)}
        assert not diff, f"{launcher} {job}: metrics differ from the basic launcher's (basic, {launcher}): {diff}"


def _group_alive(pgid: int) -> bool:
    """Some process of process group ``pgid`` is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _stop_tree(proc: subprocess.Popen, grace_s: float = 40) -> None:
    """Stop a process we started in its own session, and its process group.

    SIGTERM goes to the leader only (``ray start --block`` then shuts its services down in about 3 s;
    a SIGTERM to the whole group makes Ray's services wait for each other for ~35 s); whatever is left
    of the group after ``grace_s`` gets SIGKILL.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (proc.poll() is None or _group_alive(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    if proc.poll() is None or _group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


# ------------------------------------------------ (a) PostgreSQL-backed MLflow server, joblib sweep


@pytest.fixture(scope="session")
def mlflow_stack():
    """The stack of scripts/mlflow_stack.sh in a private state folder on free ports; stopped at the end.

    The state folder is made with mkdtemp under /tmp, not pytest's tmp_path: run as root, the cluster
    belongs to the `postgres` user, which cannot traverse pytest's 0700 base folder.
    """
    # Characters that need escaping in SQL, in libpq's password file and in a shell.
    with running_stack(password=f"pw:'{secrets.token_hex(6)}\\$x") as info:
        yield info


def test_stack_serves_on_loopback_and_is_idempotent(mlflow_stack):
    assert mlflow_stack["uri"] == f"http://127.0.0.1:{mlflow_stack['mlflow_port']}"
    assert _listen_hosts(mlflow_stack["pg_port"]) == {"127.0.0.1"}
    assert _listen_hosts(mlflow_stack["mlflow_port"]) == {"127.0.0.1"}
    again = _stack("start", mlflow_stack["env"], timeout=120)
    assert again.returncode == 0, _tail(again)
    assert "already running" in again.stdout
    status = _stack("status", mlflow_stack["env"], timeout=60)
    assert status.returncode == 0, _tail(status)
    assert "health OK" in status.stdout
    services = mlflow_stack["services"]
    for secret in ("pgpass", "pg_password", "pg_superuser_password"):
        assert (services / secret).stat().st_mode & 0o777 == 0o600, secret


def test_joblib_sweep_logs_to_the_postgres_backed_server(mlflow_stack, tmp_path):
    uri, services, password = mlflow_stack["uri"], mlflow_stack["services"], mlflow_stack["password"]
    sweep_dir = tmp_path / "joblib"
    proc = _sweep(
        "hydra/launcher=joblib",
        *SWEEP,
        "tracking=server",
        f"tracking.uri={uri}",
        "tracking.experiment=scale_out_server",
        sweep_dir=sweep_dir,
    )
    client = mlflow.MlflowClient(uri)  # an http URI: everything below goes through the REST API
    parent, children = _sweep_runs(client, "scale_out_server", sweep_dir)
    _check_sweep(parent, children)
    assert len(children) == 4

    # Artifacts went through the server into its --artifacts-destination, the model included.
    child = children[0]
    names = {f.path for f in client.list_artifacts(child.info.run_id)}
    assert {"config.yaml", "history.csv", "plots"} <= names
    exp_id = child.info.experiment_id
    for r in children:
        assert (services / "mlartifacts" / exp_id / r.info.run_id / "artifacts" / "history.csv").is_file()
    import layers  # noqa: F401  (registers the custom layers the saved model uses)

    # Not download_artifacts("models:/m-...", tracking_uri=uri): MLflow 3.17.2 then looks the logged model
    # up in the *default* store (ModelsArtifactRepository builds MlflowClient() without tracking_uri).
    model_id = child.data.tags["layerlab.model_uri"].removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    assert location.startswith("mlflow-artifacts:/")  # served (and stored) by the server
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(tmp_path / "model"), tracking_uri=uri
    )
    model = mlflow.keras.load_model(local)
    probs = model.predict(np.zeros((2, 28, 28), dtype="float32"), verbose=0)
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)

    # The rows are in PostgreSQL (read with the stack's password file, not over MLflow).
    psycopg2 = pytest.importorskip(
        "psycopg2",
        reason=f"psycopg2 is not importable in {sys.prefix} (the stack "
        "installed it into LAYERLAB_VENV); pip install -e '.[postgres]'",
    )
    with psycopg2.connect(
        host="127.0.0.1",
        port=mlflow_stack["pg_port"],
        dbname="mlflow",
        user="mlflow",
        passfile=str(services / "pgpass"),
        connect_timeout=10,
    ) as conn:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT r.status, count(*) FROM runs r JOIN experiments e "
                "ON r.experiment_id = e.experiment_id WHERE e.name = %s GROUP BY r.status",
                ("scale_out_server",),
            )
            assert dict(cur.fetchall()) == {"FINISHED": 5}
    conn.close()

    # The database password is in no log and no output.
    logs = [services / "mlflow.log", services / "postgres" / "postgres.log"]
    for text in [p.read_text(errors="replace") for p in logs] + [
        proc.stdout,
        proc.stderr,
        mlflow_stack["start"].stdout,
        mlflow_stack["start"].stderr,
    ]:
        assert password not in text
    print(f"stack start {mlflow_stack['start_s']:.1f} s; joblib 2x2 sweep into it {proc.wall_s:.1f} s")


# -------------------------------------------------------------- (b) and (c): other launchers


@pytest.fixture(scope="module")
def launcher_store(tmp_path_factory) -> dict:
    """One SQLite store and experiment shared by the basic, Ray and submitit sweeps (same params)."""
    tmp = tmp_path_factory.mktemp("launchers")
    uri = f"sqlite:///{tmp}/mlflow.db"
    return {
        "tmp": tmp,
        "uri": uri,
        "experiment": "scale_out_launchers",
        # No plots and no end-of-sweep comparison here: they cost time and are launcher-independent.
        "overrides": [
            *SWEEP,
            "training.deterministic=true",
            "tracking.log_plots=false",
            "sweep.compare=false",
            f"tracking.uri={uri}",
            f"tracking.artifact_root={(tmp / 'mlartifacts').as_uri()}",
            "tracking.experiment=scale_out_launchers",
        ],
    }


@pytest.fixture(scope="module")
def basic_sweep(launcher_store):
    """The reference: the same sweep with Hydra's basic (sequential, in-process) launcher."""
    sweep_dir = launcher_store["tmp"] / "basic"
    proc = _sweep(*launcher_store["overrides"], sweep_dir=sweep_dir)
    parent, children = _sweep_runs(mlflow.MlflowClient(launcher_store["uri"]), launcher_store["experiment"], sweep_dir)
    _check_sweep(parent, children)
    print(f"basic 2x2 sweep {proc.wall_s:.1f} s")
    return children


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head node on this machine (2 CPUs, token auth, private temp folder), stopped afterwards."""
    _require("ray", "ray", "ray")
    _require("hydra_plugins.hydra_ray_launcher", "ray", "hydra-ray-launcher")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip(f"the ray command is not installed next to {sys.executable}")
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log = open(temp / "head.log", "w")
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--object-store-memory=200000000",
            f"--temp-dir={temp}",
        ],
        cwd=temp,
        env=_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if head.poll() is not None:
                pytest.fail(f"ray start exited {head.returncode}:\n{(temp / 'head.log').read_text()[-4000:]}")
            probe = subprocess.run(
                [str(ray_bin), "status", f"--address=127.0.0.1:{port}"],
                env=_env(**env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not come up in 120 s:\n{_tail(probe, 2000)}")
            time.sleep(1)
        yield {"env": {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, "port": port}
    finally:
        _stop_tree(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_launcher_gives_the_same_runs_as_the_basic_launcher(ray_head, launcher_store, request, tmp_path):
    basic = request.getfixturevalue("basic_sweep")
    sweep_dir = launcher_store["tmp"] / "ray"
    proc = _sweep("hydra/launcher=ray_cluster", *launcher_store["overrides"], sweep_dir=sweep_dir, env=ray_head["env"])
    # The jobs went through the Ray launcher (Hydra's record of the multirun), not a fallback.
    launched_by = OmegaConf.load(sweep_dir / "multirun.yaml").hydra.launcher._target_
    assert "hydra_ray_launcher" in launched_by, launched_by
    parent, children = _sweep_runs(mlflow.MlflowClient(launcher_store["uri"]), launcher_store["experiment"], sweep_dir)
    _check_sweep(parent, children)
    _assert_same_as_basic(basic, children, "ray")
    print(f"ray 2x2 sweep {proc.wall_s:.1f} s")


def test_submitit_local_launcher_gives_the_same_runs_as_the_basic_launcher(launcher_store, request):
    _require("hydra_plugins.hydra_submitit_launcher", "slurm", "hydra-submitit-launcher")
    _require("submitit", "slurm", "submitit")
    basic = request.getfixturevalue("basic_sweep")
    sweep_dir = launcher_store["tmp"] / "submitit"
    proc = _sweep("hydra/launcher=submitit_local", *launcher_store["overrides"], sweep_dir=sweep_dir)
    results = list((sweep_dir / ".submitit").glob("*/*_result.pkl"))
    assert len(results) == 4, f"expected one submitit job folder per job, found {results}"
    parent, children = _sweep_runs(mlflow.MlflowClient(launcher_store["uri"]), launcher_store["experiment"], sweep_dir)
    _check_sweep(parent, children)
    _assert_same_as_basic(basic, children, "submitit")
    print(f"submitit_local 2x2 sweep {proc.wall_s:.1f} s")
