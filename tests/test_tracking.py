"""Tracking helpers on a real SQLite store: URIs, redaction, experiments, tag queries, the offline channel."""

from __future__ import annotations

import mlflow
import pytest

from experiments.tracking import tags
from experiments.tracking.channel import RunChannel
from experiments.tracking.redaction import MAX_PARAM_VALUE, params_from_flat, redact
from experiments.tracking.store import ensure_experiment, find_parent, find_runs
from experiments.tracking.uri import PROJECT_ROOT, default_uri, resolve_uri
from tests.conftest import free_port


def test_one_function_resolves_the_uri(monkeypatch):
    assert resolve_uri(None) == default_uri() == f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    assert resolve_uri("sqlite:///sub/x.db") == f"sqlite:///{PROJECT_ROOT / 'sub' / 'x.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_uri(None) == "http://127.0.0.1:5999"
    assert resolve_uri("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"  # the config wins


def test_redaction_and_safe_params():
    assert redact("postgresql://bob:pw@h/db") == "postgresql://bob:***@h/db"
    assert redact("api_token=abc other=1") == "api_token=*** other=1"
    params, notes = params_from_flat({"a[0]": "x" * (MAX_PARAM_VALUE + 10), "db.password": "pw", "n": None})
    assert set(params) == {"a_0_", "db.password", "n"}
    assert params["db.password"] == "***" and params["n"] == "null"
    assert (
        len(params["a_0_"]) <= MAX_PARAM_VALUE
        and params["a_0_"].endswith("...[truncated]")
        and any("truncated" in n for n in notes)
    )


def test_experiment_is_created_once_and_found_again(store):
    first = ensure_experiment(store, "exp")
    assert ensure_experiment(store, "exp") == first


def test_parent_found_only_while_running_and_for_its_own_folder(store):
    client = mlflow.MlflowClient(store)
    exp = ensure_experiment(store, "exp")
    run = client.create_run(exp, tags={tags.ROLE: tags.ROLE_PARENT, tags.SWEEP_DIR_RAW: "multirun/a"})
    assert find_parent(store, exp, "multirun/a").info.run_id == run.info.run_id
    assert find_parent(store, exp, "multirun/b") is None
    client.set_terminated(run.info.run_id, "FINISHED")
    assert find_parent(store, exp, "multirun/a") is None
    assert [r.info.run_id for r in find_runs(store, exp, f"tags.`{tags.ROLE}` = 'parent'", ["FINISHED"])] == [
        run.info.run_id
    ]


def test_channel_goes_offline_when_the_server_is_gone_and_keeps_what_was_missed(tmp_path):
    channel = RunChannel(f"http://127.0.0.1:{free_port()}")

    def boom():
        raise ConnectionError("refused")

    assert channel.track("metrics", boom) is None
    assert not channel.online and channel.pending == ["metrics"]
    assert channel.track("plots", lambda: 1 / 0) is None  # not even called once offline
    assert channel.pending == ["metrics", "plots"]
    channel.leave_for_upload(tmp_path, "run1", "FINISHED", 3)
    assert '"metrics_sent": 3' in (tmp_path / "pending.json").read_text()


def test_channel_on_a_local_store_raises_real_errors(store):
    channel = RunChannel(store)
    with pytest.raises(ZeroDivisionError):
        channel.track("x", lambda: 1 / 0)
    assert channel.track("x", lambda: 1 / 0, best_effort=True) is None and channel.online
    assert RunChannel(store, enabled=False).track("x", lambda: 1 / 0) is None
