"""Where runs go: the tracking URI, resolved by one function, and checks that the store is usable.

The runner, the sweep callback, ``python -m experiments.compare`` and
``python -m experiments.upload`` all call :func:`resolve_uri`.  Measured traps
(MLflow 3.17): the default URI is ``sqlite:///mlflow.db`` relative to the
*current* directory, so it is made absolute in the project root (a plain
``mlflow ui`` started there opens the same store); artifacts of a SQLite store
would land in ``./mlruns``, whose mere presence flips ``mlflow ui`` to the
refused file store, so experiments created here keep them in ``./mlartifacts``.
"""

from __future__ import annotations

import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from experiments.errors import TrackingError
from experiments.tracking.redaction import redact

PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
        rel = uri[len("sqlite:///") :]
        uri = f"sqlite:///{(PROJECT_ROOT / rel).resolve()}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store, or an in-memory one)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def default_artifact_root(experiment: str, uri: str | None = None) -> str:
    """``mlartifacts/<experiment>`` beside a SQLite store (the project root for any other store)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    db = sqlite_path(uri) if uri else None
    base = db.parent if db is not None else PROJECT_ROOT
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
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:
                if resp.status >= 400:
                    raise urllib.error.HTTPError(url, resp.status, "unhealthy", resp.headers, None)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(
                f"the MLflow tracking server at {shown} does not answer ({reason}) within {timeout_s:g} s",
                path="tracking.uri",
                fix=(
                    "start it (`make mlflow-server` starts one on port 5005, or `mlflow server --host 127.0.0.1`), "
                    "check the host "
                    "and port, or log locally with `tracking=local` (unset MLFLOW_TRACKING_URI)"
                ),
            ) from None
    elif parsed.scheme == "sqlite":
        path = sqlite_path(uri)
        if path is not None:
            folder = path.parent
            if not folder.exists():
                raise TrackingError(
                    f"the folder of the SQLite store {shown} does not exist",
                    path="tracking.uri",
                    fix=f"create {folder} or point tracking.uri elsewhere",
                )
            if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
                raise TrackingError(
                    f"the SQLite store {shown} is not writable",
                    path="tracking.uri",
                    fix="fix the permissions or point tracking.uri at a writable sqlite:///path.db",
                )
    elif parsed.scheme.startswith(("postgresql", "mysql", "mssql")):
        host, port = (
            parsed.hostname or "127.0.0.1",
            parsed.port or {"postgresql": 5432, "mysql": 3306}.get(parsed.scheme.split("+")[0], 1433),
        )
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as exc:
            raise TrackingError(
                f"the database of the tracking store {shown} is not reachable ({exc})",
                path="tracking.uri",
                fix="start the database (`make mlflow-server` starts PostgreSQL) or check host, port and credentials",
            ) from None


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
        raise TrackingError(
            f"the artifact location {location} is not writable ({exc.strerror or exc})",
            path="tracking.artifact_root",
            fix="set tracking.artifact_root to a writable folder (or null for ./mlartifacts), or fix the permissions",
        ) from None


def open_hint(uri: str) -> str:
    """How a user opens ``uri`` in the MLflow UI."""
    if uri == default_uri():
        return f"`mlflow ui` in {PROJECT_ROOT}"
    if uri.startswith(("sqlite", "postgres", "mysql", "mssql")):
        return f"`mlflow ui --backend-store-uri {redact(uri)}`"
    return redact(uri)
