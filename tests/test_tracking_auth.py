"""experiments/tracking/auth.py without a server: which MLflow refusals become one paragraph, and what it says.

The end-to-end behaviour against a real basic-auth server is in tests/test_auth_server.py (slow).
"""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, PERMISSION_DENIED, UNAUTHENTICATED

from experiments.errors import TrackingError
from experiments.tracking.auth import access_errors

URI = "http://127.0.0.1:5005"


def _refused(code: int, monkeypatch, user: str | None) -> TrackingError:
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    if user is None:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-value")
    with pytest.raises(TrackingError) as caught:
        with access_errors(URI, "team", "write to"):
            raise MlflowException("API request to endpoint ... failed", error_code=code)
    text = str(caught.value)
    assert "\n" not in text and URI in text and "s3cret-value" not in text
    return caught.value


def test_a_wrong_password_names_the_user_and_the_variables(monkeypatch):
    err = _refused(UNAUTHENTICATED, monkeypatch, "alice")
    assert err.path == "tracking.uri"
    assert "'alice'" in str(err) and "HTTP 401" in str(err) and "MLFLOW_TRACKING_PASSWORD" in str(err)


def test_no_login_at_all_says_which_variables_to_set(monkeypatch):
    err = _refused(UNAUTHENTICATED, monkeypatch, None)
    assert "MLFLOW_TRACKING_USERNAME is not set" in str(err)


def test_a_refused_write_asks_an_admin_for_permission(monkeypatch):
    err = _refused(PERMISSION_DENIED, monkeypatch, "mallory")
    assert err.path == "tracking.experiment"
    assert "'mallory' write to experiment 'team'" in str(err) and "ask an admin" in str(err)


def test_other_errors_pass_through():
    with pytest.raises(MlflowException, match="boom"):
        with access_errors(URI, "team", "write to"):
            raise MlflowException("boom", error_code=INVALID_PARAMETER_VALUE)
    with pytest.raises(KeyError):
        with access_errors(URI, "team", "write to"):
            raise KeyError("not MLflow's")
