"""Never lose a run: signals, resume, dead servers, NaNs, bad inputs and secrets, all provoked for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import ROOT, TINY, compose, free_port, run_cli

pytestmark = pytest.mark.slow  # real CLI processes: `pytest -m "not slow"` skips them

LONG = [
    "dataset.limit=2000",
    "training.epochs=12",
    "training.batch_size=64",
    "tracking.log_model=false",
    "tracking.log_plots=false",
]


def _popen(args, tmp_path, env=None):
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "runner.py"),
            *args,
            f"hydra.run.dir={tmp_path}/outputs/run",
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epochs(journal: Path, n: int, proc, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early:\n{proc.stderr.read()[-3000:]}")
        time.sleep(0.1)
    raise AssertionError("no epochs logged in time")


def _steps(client, run_id, key="loss"):
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_sigterm_kills_cleanly_and_resume_continues_the_same_run(tmp_path, store):
    args = [*LONG, f"tracking.uri={store}", "tracking.experiment=interrupt"]
    proc = _popen(args, tmp_path / "first")
    _wait_for_epochs(tmp_path / "first/outputs/run/metrics.jsonl", 2, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("interrupt").experiment_id])
    assert run.info.status == "KILLED"
    done = _steps(client, run.info.run_id)
    assert len(done) >= 2 and done == list(range(len(done)))
    ckpt = tmp_path / "first/outputs/run/checkpoints"
    assert (ckpt / "last.keras").exists()
    assert json.loads((ckpt / "state.json").read_text())["epochs_done"] == len(done)
    error = Path(client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))).read_text()
    assert "training.resume=" + run.info.run_id in error

    # `training.resume=true` finds the latest interrupted run of the same config.
    resumed = run_cli(*args, "training.resume=true", tmp_path=tmp_path / "second")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming run {run.info.run_id} after epoch {len(done)}" in resumed.stdout
    (again,) = client.search_runs([client.get_experiment_by_name("interrupt").experiment_id])
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert _steps(client, run.info.run_id) == list(range(12))  # steps continue, no restart, no duplicate
    assert again.data.tags["layerlab.resumed"] == "true"
    assert "test_sparse_categorical_accuracy" in again.data.metrics


def test_resume_of_an_unknown_run_is_a_clear_error(tmp_path, store):
    proc = run_cli(*TINY, f"tracking.uri={store}", "training.resume=0123456789abcdef", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "training.resume = '0123456789abcdef': no such MLflow run" in proc.stderr


def test_sweep_rerun_skips_finished_jobs(tmp_path, store):
    common = [
        "-m",
        "seed=0,1",
        *TINY,
        "tracking.log_model=false",
        "tracking.log_plots=false",
        f"tracking.uri={store}",
        "sweep.compare=false",
    ]
    first = run_cli(*common, tmp_path=tmp_path / "a")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli(*common, "sweep.skip_finished=true", tmp_path=tmp_path / "b")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("layerlab: skipped, config") == 2
    client = mlflow.MlflowClient(store)
    jobs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("layerlab").experiment_id])
        if r.data.tags.get("layerlab.role") == "job"
    ]
    assert len(jobs) == 2  # nothing trained twice


def test_dead_server_is_detected_before_training(tmp_path):
    port = free_port()
    proc = run_cli(*TINY, f"tracking.uri=http://127.0.0.1:{port}", "tracking.timeout_s=3", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert f"the MLflow tracking server at http://127.0.0.1:{port} does not answer" in proc.stderr
    assert "Epoch 1" not in proc.stdout and "Traceback" not in proc.stderr


def _start_server(db: Path, port: int, artifacts: Path) -> subprocess.Popen:
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--artifacts-destination",
            str(artifacts),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start")


def _stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_server_dying_mid_run_keeps_training_and_upload_finishes_the_run(tmp_path):
    port, db, artifacts = free_port(), tmp_path / "server.db", tmp_path / "server-artifacts"
    server = _start_server(db, port, artifacts)
    uri = f"http://127.0.0.1:{port}"
    try:
        args = [*LONG, "training.epochs=15", f"tracking.uri={uri}", "tracking.retry_s=2", "tracking.log_plots=true"]
        proc = _popen(args, tmp_path)
        journal = tmp_path / "outputs/run/metrics.jsonl"
        _wait_for_epochs(journal, 2, proc)
        _stop_server(server)
        out, err = proc.communicate(timeout=300)
    finally:
        if server.poll() is None:
            _stop_server(server)
    assert proc.returncode == 0, err[-3000:]
    assert "python -m experiments.upload" in out and "FINISHED (tracking pending upload)" in out
    out_dir = tmp_path / "outputs/run"
    pending = json.loads((out_dir / "pending.json").read_text())
    assert pending["status"] == "FINISHED" and len(journal.read_text().splitlines()) == 16  # 15 epochs + final

    server = _start_server(db, port, artifacts)  # the server comes back
    try:
        up = subprocess.run(
            [sys.executable, "-m", "experiments.upload", str(out_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert up.returncode == 0, up.stderr[-3000:]
        client = mlflow.MlflowClient(uri)
        run = client.get_run(pending["run_id"])
        assert run.info.status == "FINISHED"
        assert _steps(client, run.info.run_id) == list(range(15))
        assert "test_sparse_categorical_accuracy" in run.data.metrics
        assert "history.csv" in {f.path for f in client.list_artifacts(run.info.run_id)}
    finally:
        _stop_server(server)


def test_nan_loss_stops_the_run_as_failed(tmp_path, store):
    # exp() of a hidden layer pushed by a huge learning rate overflows: inf, then NaN.
    proc = run_cli(
        "model.activation=exponential",
        "optimizer.learning_rate=10",
        "dataset.limit=400",
        "training.epochs=3",
        "training.batch_size=64",
        f"tracking.uri={store}",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2
    assert "the training loss became nan at epoch 1, batch" in proc.stderr
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("layerlab").experiment_id])
    assert run.info.status == "FAILED" and "became nan" in run.data.tags["layerlab.error"]
    text = Path(client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))).read_text()
    assert "became nan" in text and run.data.params["optimizer.learning_rate"] == "10"  # logged before: kept


def _corrupt_npz(tmp_path) -> Path:
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip file")
    return path


def _bad_data(tmp_path) -> dict:
    """The broken datasets of the catalogue, written into tmp_path (a few files each)."""
    import numpy as np
    import pandas as pd

    from tests import datasets_fixtures as fx

    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = fx.image_folder(tmp_path / "no_images", per_class=3)
    (no_images / "bird").mkdir()
    (no_images / "bird" / "notes.txt").write_text("no images here")
    truncated = fx.image_folder(tmp_path / "truncated", per_class=3)
    victim = truncated / "dog" / "dog_001.png"
    victim.write_bytes(victim.read_bytes()[:60])
    rows = fx.table(tmp_path / "rows.csv", n=40)
    free_text = tmp_path / "free_text.csv"
    pd.read_csv(rows).assign(comment=[f"note {i}" for i in range(40)]).to_csv(free_text, index=False)
    holes = tmp_path / "holes.csv"
    df = pd.read_csv(rows)
    df.loc[3, "size"] = np.nan
    df.to_csv(holes, index=False)
    np.savez(tmp_path / "keys.npz", images=np.zeros((20, 4, 4), np.uint8), labels=np.arange(20) % 2)
    prices = fx.table(tmp_path / "prices.csv", n=40, regression=True)
    return {
        "corrupt": _corrupt_npz(tmp_path),
        "empty": empty,
        "no_images": no_images,
        "truncated": truncated,
        "rows": rows,
        "free_text": free_text,
        "holes": holes,
        "keys": tmp_path / "keys.npz",
        "prices": prices,
    }


CATALOGUE = {
    "unknown group option": (
        ["model=lamda_mlp"],
        "model = 'lamda_mlp': no option 'lamda_mlp' in config group 'model'; did you mean 'lambda_mlp'",
    ),
    "negative epochs": (["training.epochs=-1"], "training.epochs = -1: expected a positive integer"),
    "learning rate not a number": (
        ["optimizer.learning_rate=fast"],
        "optimizer.learning_rate = 'fast': expected a positive number",
    ),
    "zero batch": (["training.batch_size=0"], "training.batch_size = 0: expected a positive integer"),
    "missing dataset file": (["dataset=mnist", "dataset.path=/nonexistent/mnist.npz"], "dataset.path"),
    "corrupt dataset file": (["dataset=mnist", "dataset.path={corrupt}"], "dataset.path"),
    "images of another shape": (
        ["dataset=digits"],
        "has images of shape (8, 8) but the model 'lambda_mlp' takes (28, 28)",
    ),
    "labels outside the classes": (
        ["dataset=synthetic", "dataset.num_classes=12", "dataset.num_samples=600"],
        "labels go from 0 to 11 but the model's output has 10 unit(s)",
    ),
    "registry module that cannot be imported": (
        ["registry.modules=[no_such_pkg.layers]"],
        "cannot import the registry module 'no_such_pkg.layers'",
    ),
    "output that does not fit the loss": (
        ["training.loss=binary_crossentropy"],
        "binary_crossentropy needs one sigmoid output",
    ),
    "unknown layer in an override": (["model.layers.2.type=Dence"], "did you mean 'Dense'"),
    "unknown optimizer": (
        ["optimizer.name=Adamm"],
        "optimizer.name = 'Adamm': no Keras optimizer of that name; did you mean 'Adam'",
    ),
    "missing image folder": (
        ["dataset=image_folder", "dataset.path=/nonexistent/images"],
        "dataset.path = '/nonexistent/images': no such folder",
    ),
    "empty image folder": (["dataset=image_folder", "dataset.path={empty}"], "holds no class folders"),
    "class folder without images": (["dataset=image_folder", "dataset.path={no_images}"], "bird holds no images"),
    "truncated image file": (["dataset=image_folder", "dataset.path={truncated}"], "dog_001.png cannot be decoded"),
    "missing target column": (
        ["dataset=table", "dataset.path={rows}", "dataset.target=price"],
        "dataset.target = 'price': rows.csv has no column 'price'",
    ),
    "feature neither numeric nor categorical": (
        ["dataset=table", "dataset.path={free_text}", "dataset.target=label", "dataset.max_categories=10"],
        "feature column 'comment' is neither numeric nor categorical",
    ),
    "NaN in a table": (
        ["dataset=table", "dataset.path={holes}", "dataset.target=label"],
        "have missing values (NaN) in column(s) size",
    ),
    "npz without the expected keys": (
        ["dataset=arrays", "dataset.path={keys}"],
        "dataset.x_key = 'x_train': keys.npz has no array 'x_train'",
    ),
    "regression target with a classification loss": (
        ["dataset=table", "dataset.path={prices}", "dataset.target=price", "model=table_mlp"],
        "dataset.task = 'regression': the target is a regression target",
    ),
}


# Through the real CLI (one TensorFlow process each): a pre-check error, a schema error, an error found only
# once the data meets the model. What the CLI adds (one `layerlab: error:` line, exit 2, no traceback) is the same
# for every LayerlabError (experiments/cli.py), so the other cases check the message itself, in-process.
CLI_CASES = ("unknown group option", "negative epochs", "labels outside the classes")


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_input_through_the_cli_is_one_paragraph_and_exit_2(case, tmp_path):
    args, expected = CATALOGUE[case]
    proc = run_cli("dry_run=true", *args, tmp_path=tmp_path)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("layerlab: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert expected in errors[0], errors[0]
    assert "Fix:" in errors[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("case", [c for c in CATALOGUE if c != "unknown group option"])  # that one is Hydra's
def test_bad_input_catalogue(case, tmp_path):
    from experiments.errors import LayerlabError
    from experiments.job.entry import run_job

    args, expected = CATALOGUE[case]
    if any("{" in a for a in args):
        files = _bad_data(tmp_path)
        args = [a.format(**files) for a in args]
    with pytest.raises(LayerlabError) as caught:
        run_job(compose("dry_run=true", *args))  # the CLI prints str(exc) after `layerlab: error: `
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert expected in message and "Fix:" in message, message
    assert "\n" not in message.strip(), message  # one paragraph


def test_malformed_yaml_names_file_and_line(tmp_path):
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    (conf / "broken.yaml").write_text("name: broken\nlayers:\n  - type: Dense\n   units: 3\n")
    proc = run_cli("--config-dir", str(tmp_path / "conf"), "model=broken", "dry_run=true", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert f"{conf / 'broken.yaml'} is not valid YAML" in proc.stderr and "line 4" in proc.stderr


def test_unwritable_artifact_location(tmp_path, store):
    proc = run_cli(
        *TINY,
        f"tracking.uri={store}",
        "tracking.experiment=fresh",
        "tracking.artifact_root=/proc/layerlab",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 2
    assert "tracking.artifact_root: the artifact location /proc/layerlab is not writable" in proc.stderr


def test_secrets_are_never_logged(tmp_path, store):
    password, db_secret = "hunter2-env-secret", "s3cr3t-db-password"
    proc = run_cli(
        *TINY,
        f"tracking.uri={store}",
        "tracking.log_model=false",
        f"+notes.db_uri=postgresql://alice:{db_secret}@db.internal:5432/lab",
        f"+notes.api_token={db_secret}",
        tmp_path=tmp_path,
        env={"MLFLOW_TRACKING_PASSWORD": password, "MLFLOW_TRACKING_USERNAME": "alice"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("layerlab").experiment_id])
    blob = json.dumps({"params": run.data.params, "tags": run.data.tags})
    local = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "art")))
    for f in local.rglob("*"):
        if f.is_file() and f.suffix in (".yaml", ".txt", ".csv", ".json"):
            blob += f.read_text()
    assert password not in blob and db_secret not in blob
    assert run.data.params["notes.db_uri"] == "postgresql://alice:***@db.internal:5432/lab"
    assert run.data.params["notes.api_token"] == "***"


def test_interrupted_sweep_closes_parent_and_child_as_killed(tmp_path, store):
    proc = _popen(["-m", "seed=0,1", *LONG, f"tracking.uri={store}", "tracking.experiment=sweep_kill"], tmp_path)
    _wait_for_epochs(tmp_path / "multirun/0/metrics.jsonl", 1, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("sweep_kill").experiment_id])
    statuses = {r.data.tags["layerlab.role"]: r.info.status for r in runs}
    assert statuses == {"parent": "KILLED", "job": "KILLED"}  # the second job never started
    assert "sweep" in out and "KILLED" in out
