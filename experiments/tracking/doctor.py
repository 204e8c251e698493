"""Runs left RUNNING by a process that died: found by their heartbeat and closed FAILED.

A job's run carries its host, pid and a heartbeat (:mod:`experiments.tracking.heartbeat`).
A RUNNING run is *lost* when

* it was started on this machine and its process is gone (the pid is free or
  belongs to a process started at another time), whatever the heartbeat's age; or
* it was started on another machine and its heartbeat is older than
  ``stale_s`` (default :data:`STALE_S`, ten missed beats): a run alive on
  another machine keeps beating and is never touched.

Runs without a heartbeat (made before it existed, or in their first second)
are left alone, except the children of a lost sweep parent: a sweep's parent
run beats too, from the process that launched the sweep, and when that
process is gone (SIGKILL, power loss) the parent is closed FAILED with the
command that completes the sweep, and so is every child still RUNNING that
is not alive by its own heartbeat.  ``python -m experiments.doctor`` runs this by hand; every
run and sweep runs it on its experiment when it starts.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import time
from dataclasses import dataclass

from experiments.tracking import tags
from experiments.tracking.heartbeat import process_start

log = logging.getLogger(__name__)

STALE_S = 300.0
log = logging.getLogger(__name__)


@dataclass
class LostRun:
    run_id: str
    experiment_id: str
    name: str
    reason: str
    heartbeat: float | None
    role: str = tags.ROLE_JOB


def _alive_here(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    return not started or process_start(pid) in ("", started)


def _when(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch_s))


def lost_reason(
    run_tags: dict, now: float | None = None, stale_s: float = STALE_S, host: str | None = None
) -> str | None:
    """Why a RUNNING run with these tags is lost, or None when it is (or may be) alive."""
    beat = run_tags.get(tags.HEARTBEAT)
    if not beat:
        return None
    now = time.time() if now is None else now
    host = socket.gethostname() if host is None else host
    last = float(beat)
    where = f"host {run_tags.get(tags.HOST, '?')}, pid {run_tags.get(tags.PID, '?')}"
    if run_tags.get(tags.HOST) == host and str(run_tags.get(tags.PID, "")).isdigit():
        if _alive_here(int(run_tags[tags.PID]), run_tags.get(tags.PID_START, "")):
            return None
        return f"process lost; last heartbeat at {_when(last)} ({where}: the process no longer exists)"
    if now - last > stale_s:
        return (
            f"process lost; last heartbeat at {_when(last)} ({where}: no heartbeat for "
            f"{now - last:.0f} s, more than {stale_s:.0f} s)"
        )
    return None


def find_lost(uri: str, experiment_ids: list[str], stale_s: float = STALE_S, now: float | None = None) -> list[LostRun]:
    """The lost runs (see the module doc) among the RUNNING runs of these experiments."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'", max_results=5000)
    lost = []
    for run in runs:
        reason = lost_reason(run.data.tags, now=now, stale_s=stale_s)
        if reason:
            lost.append(
                LostRun(
                    run.info.run_id,
                    run.info.experiment_id,
                    run.info.run_name or "",
                    reason,
                    float(run.data.tags[tags.HEARTBEAT]),
                    run.data.tags.get(tags.ROLE, tags.ROLE_JOB),
                )
            )
    return lost


def _fix_for(run, run_id: str) -> str:
    """How to finish what the lost run was doing: a job resumes from its checkpoint, a sweep's parent completes it."""
    if run.data.tags.get(tags.ROLE) == tags.ROLE_PARENT:
        command = run.data.tags.get(tags.COMPLETING_COMMAND, "")
        return (
            f"complete the sweep (every job without a FINISHED run) with: {command}"
            if command
            else "rerun the sweep with sweep.skip_finished=true"
        )
    overrides = json.loads(run.data.tags.get(tags.OVERRIDES, "[]") or "[]")
    return (
        "resume from its last checkpoint with: python runner.py "
        + " ".join(shlex.quote(o) for o in overrides)
        + f" training.resume={run_id}"
    ).replace("  ", " ")


def close_run_failed(uri: str, run_id: str, reason: str, end_time_s: float | None = None) -> None:
    """End a run FAILED with ``reason`` (tag ``layerlab.error`` and ``error.txt``) and how to finish its work."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    hint = _fix_for(client.get_run(run_id), run_id)
    client.set_tag(run_id, tags.ERROR, f"{reason}. Fix: {hint}"[:4000])
    try:
        client.log_text(run_id, f"{reason}.\n\nFix: {hint}\n", "error.txt")
    except Exception as exc:  # the tag says it already; an unreachable artifact store must not keep the run open
        log.debug("error.txt of run %s not written: %r", run_id, exc)
    end_ms = int(end_time_s * 1000) if end_time_s else None
    client.set_terminated(run_id, "FAILED", end_time=end_ms)


def _closed_meanwhile(uri: str, run_id: str) -> bool:
    """Someone (the launcher that saw its worker die, another doctor) closed or explained it since the search."""
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)
    return run.info.status != "RUNNING" or bool(run.data.tags.get(tags.ERROR))


def orphaned_children(uri: str, experiment_id: str, parent_run_id: str) -> list[LostRun]:
    """RUNNING children of a lost sweep parent that no living process vouches for (lost, or never beat)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [experiment_id],
        max_results=5000,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{tags.PARENT_RUN_ID}` = '{parent_run_id}'",
    )
    orphans = []
    for run in runs:
        beat = run.data.tags.get(tags.HEARTBEAT)
        if beat and lost_reason(run.data.tags) is None:
            continue  # its own process is alive: it closes its run itself
        orphans.append(
            LostRun(
                run.info.run_id,
                run.info.experiment_id,
                run.info.run_name or "",
                "the sweep's process was lost while this job ran" if not beat else lost_reason(run.data.tags),
                float(beat or 0) or None,
            )
        )
    return orphans


def close_lost(
    uri: str, experiment_ids: list[str], stale_s: float = STALE_S, dry_run: bool = False, quiet: bool = False
) -> list[LostRun]:
    """Close every lost run FAILED ("process lost; last heartbeat at ..."); the runs closed.

    A lost sweep parent is closed with the command that completes its sweep,
    and its orphaned children (:func:`orphaned_children`) with it. With
    ``quiet`` (the automatic check at the start of a run or sweep) any error
    is swallowed: a failing check must never stop the new work.
    """
    try:
        lost = find_lost(uri, experiment_ids, stale_s)
        for run in list(lost):
            if run.role == tags.ROLE_PARENT:
                children = [
                    c
                    for c in orphaned_children(uri, run.experiment_id, run.run_id)
                    if c.run_id not in {r.run_id for r in lost}
                ]
                lost += children
        for run in lost:
            if not dry_run and not _closed_meanwhile(uri, run.run_id):
                close_run_failed(uri, run.run_id, run.reason, run.heartbeat)
            if not quiet or not dry_run:
                print(
                    f"layerlab: {'would close' if dry_run else 'closed'} run {run.run_id} ({run.name}) FAILED: "
                    f"{run.reason}",
                    flush=True,
                )
        return lost
    except Exception as exc:
        if not quiet:
            raise
        print(f"layerlab: could not check for lost runs: {type(exc).__name__}: {exc}", flush=True)
        return []


def main(argv=None) -> int:
    import argparse

    import mlflow

    from experiments.tracking.uri import check_store, resolve_uri

    parser = argparse.ArgumentParser(
        prog="python -m experiments.doctor", description="Close FAILED the RUNNING runs whose process died (heartbeat)."
    )
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else the project's store")
    parser.add_argument(
        "--experiment",
        action="append",
        default=None,
        help="experiment name (repeatable); default: every active experiment",
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        default=STALE_S,
        help=f"seconds without heartbeat before a run of another machine is lost (default {STALE_S:g})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the lost runs, close nothing")
    args = parser.parse_args(argv)
    uri = resolve_uri(args.tracking_uri)
    from experiments.errors import LayerlabError

    try:
        check_store(uri, 10.0)
    except LayerlabError as exc:
        print(f"layerlab: error: {exc}", flush=True)
        return exc.exit_code
    client = mlflow.MlflowClient(tracking_uri=uri)
    if args.experiment:
        exps = [client.get_experiment_by_name(n) for n in args.experiment]
        missing = [n for n, e in zip(args.experiment, exps) if e is None]
        if missing:
            print(f"layerlab: error: no experiment named {', '.join(map(repr, missing))} in {uri}", flush=True)
            return 2
    else:
        exps = client.search_experiments()
    lost = close_lost(uri, [e.experiment_id for e in exps], stale_s=args.stale_after, dry_run=args.dry_run)
    print(
        f"layerlab: doctor: {len(lost)} lost run(s) {'found' if args.dry_run else 'closed FAILED'} in "
        f"{len(exps)} experiment(s) of {uri}",
        flush=True,
    )
    return 0


def close_sweep_job(uri: str, experiment_id: str, sweep_id: str, job_num: int, reason: str) -> str | None:
    """Close FAILED the run of job ``job_num`` of a sweep (its worker died); its id, or None.

    The launcher knows the precise reason (the signal): it also replaces the
    doctor's "process lost" when another job's start-up check came first.
    """
    from experiments.tracking.store import find_runs

    sweep = f"tags.`{tags.SWEEP_ID}` = '{sweep_id}' and "
    runs = [
        r
        for r in find_runs(
            uri, experiment_id, sweep + f"tags.`{tags.JOB_NUM}` = '{job_num}'", statuses=["RUNNING", "FAILED"]
        )
        if tags.FUSED_JOB not in r.data.tags
    ]
    # A fused job's replicas carry their solo job numbers; the launcher's number is their FUSED_JOB.
    runs += find_runs(
        uri, experiment_id, sweep + f"tags.`{tags.FUSED_JOB}` = '{job_num}'", statuses=["RUNNING", "FAILED"]
    )
    runs = [r for r in runs if r.info.status == "RUNNING" or r.data.tags.get(tags.ERROR, "").startswith("process lost")]
    for run in runs:
        close_run_failed(uri, run.info.run_id, reason)
    return runs[0].info.run_id if runs else None
