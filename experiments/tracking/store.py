"""The MLflow store: experiments created once, runs found by tag queries, the code version.

``set_experiment`` loses races between processes (MLflow 3.17), so the
experiment id is looked up (or created) here and passed to every run.  Runs
are found by their tags (:mod:`experiments.tracking.tags`), which works the
same under every Hydra launcher.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from experiments.errors import TrackingError
from experiments.tracking import tags
from experiments.tracking.auth import access_errors
from experiments.tracking.heartbeat import claim
from experiments.tracking.uri import PROJECT_ROOT, check_artifact_location, default_artifact_root, sqlite_path

# Bounded wait for another process that is creating the same SQLite store (seconds). Creating a fresh
# store (MLflow's schema migrations) takes about a second (BENCHMARKS.md section 1); the bound leaves room
# for a slow disk.
STORE_LOCK_TIMEOUT_S = 120.0
# Bounded wait for a program that does not take the lock (a notebook's MlflowClient, `mlflow ui`) and is
# migrating the same new SQLite store: until it is done, every other opener fails on its half-made tables.
STORE_MIGRATION_WAIT_S = 60.0


@contextmanager
def store_lock(uri: str, timeout_s: float = STORE_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the cross-process lock of a SQLite store (``<file>.lock`` beside it); a no-op for servers.

    Several processes opening a *fresh* SQLite store at once each run MLflow's
    schema migration and corrupt it ("duplicate column", "table already
    exists"); and ``create_experiment`` races between processes.  Everything
    that may create the store or an experiment runs under this lock, so any
    number of runs and sweeps can start at once.  A database server
    (PostgreSQL behind ``mlflow server``) needs no lock: it migrates once at
    its own start.
    """
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    lock = FileLock(f"{path}.lock", timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise TrackingError(
            f"another process has held the lock {path}.lock for {timeout_s:g} s while creating or migrating the store",
            path="tracking.uri",
            fix=f"wait for the other runs to start, or delete {path}.lock if no layerlab process is running",
        ) from None
    try:
        yield
    finally:
        lock.release()


def ensure_experiment(uri: str, name: str, artifact_root: str | None = None) -> str:
    """The id of experiment ``name``, creating the store and the experiment (once) if needed.

    Safe against other processes doing the same at the same moment: a SQLite
    store is opened under :func:`store_lock`; on a server, the loser of the
    race looks the experiment up again instead of failing.
    """
    with store_lock(uri), access_errors(uri, name, "read or create"):  # a 401/403 here: one paragraph
        return wait_out_migration(uri, lambda: _ensure_experiment(uri, name, artifact_root))


def wait_out_migration(uri: str, action, wait_s: float = STORE_MIGRATION_WAIT_S):
    """``action()``, retried while another program migrates the same SQLite store; a lasting failure: one paragraph.

    Two programs opening a new SQLite store at once both run MLflow's schema
    migration; the loser fails ("table _alembic_tmp_... already exists",
    "duplicate column", alembic's "expected to match one row") until the
    winner is done, and then opens the store normally.  Servers migrate once
    at their own start: their errors are not retried here.
    """
    if sqlite_path(uri) is None:
        return action()
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            return action()
        except TrackingError:
            raise
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                raise TrackingError(
                    f"the SQLite store {uri} could not be opened for {wait_s:g} s ({type(exc).__name__}: {first}); "
                    "another program may have created it at the same moment and left it half-made",
                    path="tracking.uri",
                    fix="if no other program uses the file, move it away and run again (a new store is created), "
                    "or point tracking.uri at another sqlite:///path.db",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _ensure_experiment(uri: str, name: str, artifact_root: str | None) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(
                f"the MLflow experiment {name!r} is deleted (in the trash)",
                path="tracking.experiment",
                fix=f"restore it (`mlflow experiments restore --experiment-id {exp.experiment_id}`) "
                "or choose another tracking.experiment",
            )
        return exp.experiment_id
    location = artifact_root
    if location is None and not uri.startswith(("http://", "https://")):
        location = default_artifact_root(name, uri)
    if location:
        check_artifact_location(location)
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        for _ in range(20):  # someone else created it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            time.sleep(0.25)
        raise


def git_state(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Commit and dirty flag of the project checkout (empty outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {tags.MLFLOW_GIT_COMMIT: commit, tags.GIT_COMMIT: commit, tags.GIT_DIRTY: str(bool(dirty)).lower()}


def find_runs(
    uri: str, experiment_id: str, filter_string: str, statuses: Iterable[str] | None = None, max_results: int = 1000
) -> list:
    """Runs of one experiment matching an MLflow filter, newest first."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [experiment_id], filter_string=filter_string, max_results=max_results, order_by=["attributes.start_time DESC"]
    )
    if statuses:
        runs = [r for r in runs if r.info.status in set(statuses)]
    return runs


def reopen_run(uri: str, run_id: str) -> None:
    """Make a closed run RUNNING again, owned by this process (a continued study's parent run).

    Its owner's identity and a fresh heartbeat are stored before its status,
    so a lost-run check in any process (every job runs one when it starts)
    sees this living process, not the dead one that ran it before.  An error
    left by that earlier process (``layerlab.error``) is cleared: the run is
    alive again; its ``error.txt`` stays as the record.  ``layerlab.reopened``
    counts the reopenings.
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    claim(client, run_id)
    if tags.ERROR in run.data.tags:
        client.delete_tag(run_id, tags.ERROR)
    client.set_tag(run_id, tags.REOPENED, str(int(run.data.tags.get(tags.REOPENED, "0") or 0) + 1))
    client.update_run(run_id, status="RUNNING")


def find_parent(uri: str, experiment_id: str, sweep_dir: str):
    """The RUNNING parent run of the sweep writing to ``sweep_dir``, or None.

    Every job of a sweep calls this with its own ``hydra.sweep.dir``: a tag
    query works the same for jobs in the launching process, in joblib or Ray
    workers and in SLURM jobs, whatever environment they inherited.
    """
    runs = find_runs(
        uri,
        experiment_id,
        f"tags.`{tags.ROLE}` = '{tags.ROLE_PARENT}' and tags.`{tags.SWEEP_DIR_RAW}` = '{sweep_dir}'",
        statuses=["RUNNING"],
    )
    return runs[0] if runs else None
