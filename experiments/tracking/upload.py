"""Finish a run whose tracking server went away: ``python -m experiments.upload <job output dir>``.

A job that lost its server leaves ``pending.json`` in its output folder (see
:mod:`experiments.job.tracked`).  This sends what the server missed (the journaled
metrics after the last delivered one, the artifacts, the model) to the same
run, sets its final status, and removes ``pending.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from experiments.errors import LayerlabError, TrackingError
from experiments.tracking import tags
from experiments.tracking.uri import check_store


def upload(out_dir: Path, tracking_uri: str | None = None) -> dict:
    """Send the pending part of one run; returns what was sent.

    Args:
        out_dir: the job's output folder (holds ``pending.json``).
        tracking_uri: where to send; default: the run's own URI (credentials
            come from the environment, they are never stored in the file).
    """

    out_dir = Path(out_dir)
    pending_file = out_dir / "pending.json"
    if not pending_file.exists():
        raise LayerlabError(
            f"nothing to upload: {pending_file} does not exist",
            path="out_dir",
            value=str(out_dir),
            fix="pass the output folder printed by the run that lost its server",
        )
    pending = json.loads(pending_file.read_text())
    stored = pending["tracking_uri"]
    # The run lives in the store it was created in: prefer that over an ambient MLFLOW_TRACKING_URI.
    uri = tracking_uri or (stored if "***" not in stored else os.environ.get("MLFLOW_TRACKING_URI") or stored)
    if "***" in uri:
        raise TrackingError(
            "the stored URI has its credentials redacted",
            path="tracking.uri",
            fix="pass --tracking-uri with the credentials, or set MLFLOW_TRACKING_URI",
        )
    check_store(uri, 10)
    client = mlflow.MlflowClient(uri)
    run_id = pending["run_id"]
    lines = (out_dir / pending["journal"]).read_text().splitlines()
    to_send = [json.loads(line) for line in lines[int(pending.get("metrics_sent", 0)) :] if line.strip()]
    for entry in to_send:
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), entry["timestamp"], entry["step"]) for k, v in entry["metrics"].items()],
        )
    art = out_dir / pending.get("artifacts", "artifacts")
    sent_files = []
    if art.is_dir():
        for f in sorted(art.iterdir()):
            if f.name == "model.keras":
                client.log_artifact(run_id, str(f), "model")
            elif f.suffix == ".png":
                client.log_artifact(run_id, str(f), "plots")
            else:
                client.log_artifact(run_id, str(f))
            sent_files.append(f.name)
    if (out_dir / "error.txt").exists():
        client.log_artifact(run_id, str(out_dir / "error.txt"))
    client.set_tag(run_id, tags.UPLOADED_LATER, "true")
    client.set_terminated(run_id, pending["status"])
    pending_file.rename(out_dir / "pending.uploaded.json")
    return {"run_id": run_id, "metric_steps": len(to_send), "files": sent_files, "status": pending["status"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.upload", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="the job's output folder (it holds pending.json)")
    parser.add_argument("--tracking-uri", default=None, help="default: the run's own tracking URI")
    args = parser.parse_args(argv)
    try:
        sent = upload(args.out_dir, args.tracking_uri)
    except LayerlabError as exc:
        print(f"layerlab: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(
        f"layerlab: uploaded run {sent['run_id']}: {sent['metric_steps']} metric step(s), "
        f"{len(sent['files'])} file(s), status {sent['status']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
