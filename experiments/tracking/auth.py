"""A tracking server that asks who you are: its refusals as one paragraph that says what to do.

MLflow's basic-auth app (``mlflow server --app-name basic-auth``, what
``scripts/mlflow_stack.sh start --auth`` runs) answers a request without valid
credentials with HTTP 401 and one the user may not make with 403; the MLflow
client raises both as an ``MlflowException`` (``UNAUTHENTICATED`` /
``PERMISSION_DENIED``) from deep inside the first call that hits them, a long
traceback. The server is the authority on who may do what, so nothing is
checked here in advance: the calls that make a run's or a sweep's first
request (the experiment lookup) and its first write (the run's creation) run
inside :func:`access_errors`, which turns those two answers into a
:class:`TrackingError` before anything was logged.

Credentials reach MLflow only through its environment variables, never the
config (which is logged): the message names them, never their values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from experiments.errors import TrackingError
from experiments.tracking.redaction import redact

USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"
# How a user of layerlab's own team server gets an account (scripts/mlflow_stack.sh).
ADD_USER_HINT = "an admin of the server creates one with `scripts/mlflow_stack.sh adduser NAME`"


def _who() -> str:
    user = os.environ.get(USERNAME_ENV)
    if user:
        return f"user {user!r}"
    if os.environ.get(TOKEN_ENV):
        return f"the token in {TOKEN_ENV}"
    return "an anonymous client"


def unauthenticated(uri: str) -> TrackingError:
    """The server did not accept the credentials (HTTP 401)."""
    user = os.environ.get(USERNAME_ENV)
    if user:
        what = f"did not accept the password of {_who()} (HTTP 401)"
        fix = (
            f"set {PASSWORD_ENV} to that user's password in the environment (not in YAML), or {USERNAME_ENV} "
            f"to another user of that server; {ADD_USER_HINT}"
        )
    else:
        what = f"requires a login and {USERNAME_ENV} is not set (HTTP 401)"
        fix = (
            f"set {USERNAME_ENV} and {PASSWORD_ENV} in the environment (not in YAML) to a user of that server; "
            f"{ADD_USER_HINT}"
        )
    return TrackingError(
        f"the MLflow tracking server at {redact(uri)} {what}; nothing was logged", path="tracking.uri", fix=fix
    )


def permission_denied(uri: str, experiment: str, action: str) -> TrackingError:
    """The credentials are valid but may not do ``action`` ("write to") with the experiment (HTTP 403)."""
    return TrackingError(
        f"the MLflow tracking server at {redact(uri)} does not let {_who()} {action} experiment {experiment!r} "
        f"(HTTP 403); nothing was logged",
        path="tracking.experiment",
        fix=(
            f"ask an admin of that server to give this user EDIT permission on the experiment, log to an experiment "
            f"of your own (tracking.experiment=NAME: its creator may write to it), or set {USERNAME_ENV} / "
            f"{PASSWORD_ENV} in the environment to a user who may write to it"
        ),
    )


@contextmanager
def access_errors(uri: str, experiment: str, action: str) -> Iterator[None]:
    """Turn the server's 401 / 403 inside the block into a one-paragraph :class:`TrackingError`.

    ``action`` says what the block does with the experiment, for the message: "read or create", "write to".
    """
    try:
        yield
    except Exception as exc:
        from mlflow.exceptions import MlflowException  # only when something failed: MLflow is loaded by then

        if not isinstance(exc, MlflowException):
            raise
        status = exc.get_http_status_code()
        if exc.error_code == "UNAUTHENTICATED" or status == 401:
            raise unauthenticated(uri) from None
        if exc.error_code == "PERMISSION_DENIED" or status == 403:
            raise permission_denied(uri, experiment, action) from None
        raise
