"""MLflow tracking: where runs go, one run per job, and what is logged in it.

Measured traps this module works around (see shared notes, MLflow 3.17):

* the default URI is ``sqlite:///mlflow.db`` relative to the *current*
  directory; we make it absolute in the project root, so a plain ``mlflow ui``
  started there opens the same store;
* artifacts of a SQLite store would land in ``./mlruns``, whose mere presence
  flips a plain ``mlflow ui`` to the (refused) file store: experiments created
  here put their artifacts under ``./mlartifacts`` instead;
* ``set_experiment`` loses races between processes: we pass
  ``experiment_id`` to every ``start_run``;
* a run started without ``with`` stays RUNNING when the job dies: runs are
  always ended in ``finally`` with FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterable

from experiments.errors import TrackingError

# MLflow's HTTP client retries 7 times with exponential back-off (minutes) by default:
# a dead server would freeze each logging call. Fail fast; our own code retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_PARAM_VALUE = 6000  # MLflow truncates longer values with only a warning
TAG_PREFIX = "layerlab."

# Environment variables a sweep's parent process hands to its jobs.
ENV_PARENT_RUN = "LAYERLAB_PARENT_RUN_ID"
ENV_EXPERIMENT_ID = "LAYERLAB_EXPERIMENT_ID"
ENV_SWEEP_ID = "LAYERLAB_SWEEP_ID"
ENV_TRACKING_URI = "LAYERLAB_TRACKING_URI"


def default_uri() -> str:
    """``sqlite:///<project root>/mlflow.db``: what ``mlflow ui`` opens from the project root."""
    return f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"


def resolve_uri(configured: str | None) -> str:
    """The tracking URI: the config's, else ``$MLFLOW_TRACKING_URI``, else :func:`default_uri`.

    A relative SQLite path is made absolute against the project root so that
    every job of a sweep, whatever its working directory, writes one store.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///"):]
        uri = f"sqlite:///{(PROJECT_ROOT / rel).resolve()}"
    return uri


_SECRET_ASSIGNMENT = re.compile(
    r"""(\b[\w.\-]*(?:pass(?:word)?|secret|token|api_?key|credential)[\w.\-]*["']?\s*[=:]\s*["']?)(?!\*\*\*)[^\s,'"\]}]+""",
    re.IGNORECASE)


def redact(text: str) -> str:
    """Hide credentials: in URIs (``scheme://user:secret@host`` -> ``scheme://user:***@host``) and in
    ``key=value`` / ``key: value`` pairs whose key names a secret (password, token, api_key, ...)."""
    text = re.sub(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", r"\1***@", str(text))
    return _SECRET_ASSIGNMENT.sub(r"\1***", text)


def default_artifact_root(experiment: str, uri: str | None = None) -> str:
    """``mlartifacts/<experiment>`` beside a SQLite store (the project root for any other store)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    base = PROJECT_ROOT
    if uri and uri.startswith("sqlite:///"):
        base = Path(uri[len("sqlite:///"):]).parent
    return (base / "mlartifacts" / safe).as_uri()


def check_store(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, with a precise message, if the tracking store cannot be used.

    HTTP servers get a ``/health`` probe (bounded by ``timeout_s``); SQLite
    gets a writability check of its folder; other database URIs a TCP probe.
    """
    parsed = urllib.parse.urlparse(uri)
    shown = redact(uri)
    if parsed.scheme in ("http", "https"):
        url = f"{uri.rstrip('/')}/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (a URL the user configured)
                if resp.status >= 400:
                    raise urllib.error.HTTPError(url, resp.status, "unhealthy", resp.headers, None)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"the MLflow tracking server at {shown} does not answer ({reason}) within {timeout_s:g} s",
                path="tracking.uri", fix=(
                    "start it (`make mlflow-server` starts one on port 5005, or `mlflow server --host 127.0.0.1`), check the host "
                    "and port, or log locally with `tracking=local` (unset MLFLOW_TRACKING_URI)")) from None
    elif parsed.scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if path is not None:
            folder = path.parent
            if not folder.exists():
                raise TrackingError(f"the folder of the SQLite store {shown} does not exist", path="tracking.uri",
                                    fix=f"create {folder} or point tracking.uri elsewhere")
            if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise TrackingError(f"the SQLite store {shown} is not writable", path="tracking.uri",
                                    fix="fix the permissions or point tracking.uri at a writable sqlite:///path.db")
    elif parsed.scheme.startswith(("postgresql", "mysql", "mssql")):
        host, port = parsed.hostname or "127.0.0.1", parsed.port or {"postgresql": 5432, "mysql": 3306}.get(
            parsed.scheme.split("+")[0], 1433)
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            raise TrackingError(f"the database of the tracking store {shown} is not reachable ({exc})",
                                path="tracking.uri", fix="start the database (`make mlflow-server` starts PostgreSQL) "
                                "or check host, port and credentials") from None


def check_artifact_location(location: str) -> None:
    """A local artifact location must be creatable and writable (tried for real: root passes os.access)."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme not in ("", "file"):
        return
    path = Path(urllib.request.url2pathname(parsed.path))
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".layerlab-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrackingError(f"the artifact location {location} is not writable ({exc.strerror or exc})",
                            path="tracking.artifact_root",
                            fix="set tracking.artifact_root to a writable folder (or null for ./mlartifacts), "
                                "or fix the permissions") from None


def ensure_experiment(uri: str, name: str, artifact_root: str | None = None) -> str:
    """The id of experiment ``name``, creating it (once) if needed.

    Safe against another process creating it at the same moment: the loser
    of the race looks the experiment up again instead of failing.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(f"the MLflow experiment {name!r} is deleted (in the trash)", path="tracking.experiment",
                                fix=f"restore it (`mlflow experiments restore --experiment-id {exp.experiment_id}`) "
                                    "or choose another tracking.experiment")
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
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"mlflow.source.git.commit": commit, f"{TAG_PREFIX}git_commit": commit,
            f"{TAG_PREFIX}git_dirty": str(bool(dirty)).lower()}


_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_?key|credential", re.IGNORECASE)


def params_from_flat(flat: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """MLflow-safe params: sanitised keys, redacted secrets, values cut at 6,000 chars.

    Returns:
        (params, notes): ``notes`` lists what was truncated or redacted, to be
        logged as a tag so nothing is changed silently.
    """
    params, notes = {}, []
    for key, value in flat.items():
        safe_key = re.sub(r"[^A-Za-z0-9_\-. /:]", "_", key)[:250]
        text = "null" if value is None else str(value)
        if _SECRET_KEY.search(key):
            text, _ = "***", notes.append(f"{key}: redacted")
        redacted = redact(text)
        if redacted != text:
            notes.append(f"{key}: credentials redacted")
            text = redacted
        if len(text) > MAX_PARAM_VALUE:
            notes.append(f"{key}: truncated from {len(text)} chars")
            text = text[: MAX_PARAM_VALUE - 15] + "...[truncated]"
        params[safe_key] = text
    return params, notes


def find_runs(uri: str, experiment_id: str, filter_string: str, statuses: Iterable[str] | None = None,
              max_results: int = 1000) -> list:
    """Runs of one experiment matching an MLflow filter, newest first."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([experiment_id], filter_string=filter_string, max_results=max_results,
                              order_by=["attributes.start_time DESC"])
    if statuses:
        runs = [r for r in runs if r.info.status in set(statuses)]
    return runs


def open_hint(uri: str) -> str:
    """How a user opens ``uri`` in the MLflow UI."""
    if uri == default_uri():
        return f"`mlflow ui` in {PROJECT_ROOT}"
    if uri.startswith(("sqlite", "postgres", "mysql", "mssql")):
        return f"`mlflow ui --backend-store-uri {redact(uri)}`"
    return redact(uri)


def tags_json(values: list[str]) -> str:
    return json.dumps(list(values))
