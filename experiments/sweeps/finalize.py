"""The end of a sweep: every job with its status, the comparison, and the parent run closed.

Runs in the process that launched the sweep, whether Hydra's ``on_multirun_end``
ran or not (it is skipped when a job failed).
"""

from __future__ import annotations

import json
import shlex

import mlflow

from experiments.config.fusion import solo_jobs
from experiments.job.records import read_records
from experiments.launching.ledger import completing_command, job_row, sweep_hydra_overrides, unstarted_rows
from experiments.sweeps.champion import best_row, choose_and_register
from experiments.sweeps.progress import view
from experiments.sweeps.state import SweepState
from experiments.sweeps.ui import publish
from experiments.tracking import tags
from experiments.tracking.uri import open_hint
from experiments.training.progress_file import read_statuses


def finalize(state: SweepState, interrupted: bool, failed_exit: bool = False) -> dict:
    """List the jobs, compare them, log the reports and close the parent run."""
    if state.dry_run:
        return finalize_dry_run(state)
    client = mlflow.MlflowClient(state.uri)
    runs = client.search_runs(
        [state.experiment_id],
        filter_string=f"tags.`{tags.SWEEP_ID}` = '{state.sweep_id}' and tags.`{tags.ROLE}` = '{tags.ROLE_JOB}'",
        max_results=5000,
    )
    rows = []
    for r in sorted(runs, key=lambda r: int(r.data.tags.get(tags.JOB_NUM, "0") or 0)):
        status = r.info.status
        error = r.data.tags.get(tags.ERROR, "")
        if status == "RUNNING":  # a worker killed hard leaves its run RUNNING
            client.set_terminated(r.info.run_id, "KILLED")
            status, error = "KILLED", error or STILL_RUNNING
        overrides = json.loads(r.data.tags.get(tags.OVERRIDES, "[]"))
        rows.append(
            {
                "job": r.data.tags.get(tags.JOB_NUM, "?"),
                "status": status,
                "run_id": r.info.run_id,
                "overrides": " ".join(overrides),
                "val": r.data.metrics.get(state.metric.val),
                "test": r.data.metrics.get(state.metric.test),
                "error": error,
                "rerun": "python runner.py " + " ".join(shlex.quote(o) for o in overrides),
            }
        )
    rows += unstarted_rows(state.sweep_dir, {row["job"] for row in rows})  # killed while starting, never started
    rows += ended_without_run_rows(state.sweep_dir, {row["job"] for row in rows})  # any launcher
    mark_retried(rows)
    failed = [row for row in rows if row["status"] not in ("FINISHED", RETRIED)]
    sweep_overrides = json.loads(client.get_run(state.parent_run_id).data.tags.get(tags.OVERRIDES, "[]"))
    state.complete = (
        completing_command(sweep_overrides, sweep_hydra_overrides(state.sweep_dir, state.hydra_overrides))
        if failed
        else ""
    )
    out = state.sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    summary_md = out / "sweep_summary.md"
    summary_md.write_text(_summary_markdown(state, rows, failed, interrupted))
    client.log_artifact(state.parent_run_id, str(summary_md))
    report = None
    finished = [row for row in rows if row["status"] == "FINISHED"]
    if state.compare and len(finished) >= 1:
        try:
            # Imported here, not at the top: Hydra instantiates this package's callback for single runs
            # too, and the statistics stack (scipy.stats; BENCHMARKS.md section 1) is needed only at the end of a sweep.
            from experiments.analysis.compare import compare_sweep

            report = compare_sweep(
                state.uri,
                state.experiment,
                sweep_id=state.sweep_id,
                out_dir=out / "comparison",
                metric=state.metric.name,
                mode=state.metric.mode,
                target=state.target,
                **state.compare_options,
            )
            client.log_artifacts(state.parent_run_id, str(out / "comparison"), "comparison")
        except Exception as exc:
            print(f"layerlab: comparison skipped: {type(exc).__name__}: {exc}", flush=True)
    best = best_row(state, rows)  # by the validation metric, never test: one choice for the UI and the registry
    if rows:
        try:  # the sweep at a glance in the UI; never lose the sweep's outcome over it
            publish(client, state, runs, report, best["run_id"] if best else None, sweep_overrides)
        except Exception as exc:
            print(f"layerlab: the sweep's description in MLflow is incomplete: {type(exc).__name__}: {exc}", flush=True)
    # No job at all (the launcher itself failed) or a non-zero exit is a failed sweep too.
    status = "KILLED" if interrupted else ("FAILED" if failed or not rows or failed_exit else "FINISHED")
    if not rows:
        client.set_tag(state.parent_run_id, tags.ERROR, NO_JOB_STARTED)
    client.log_metric(state.parent_run_id, "jobs_finished", len(finished))
    client.log_metric(state.parent_run_id, "jobs_failed", len(failed))
    print(choose_and_register(state, client, rows, best), flush=True)  # the best model, registered if asked
    client.set_terminated(state.parent_run_id, status)
    print(_summary_terminal(state, rows, failed, status, report), flush=True)
    return {"status": status, "rows": rows, "report": report}


STILL_RUNNING = (
    "its run was still RUNNING when the sweep ended: the process running it died or was stopped "
    "with the launcher's batch"
)
RETRIED = "RETRIED"  # an attempt of a job that another attempt finished (a launcher that retries, e.g. Ray)


def mark_retried(rows: list[dict]) -> None:
    """A job with a FINISHED run is finished: its other attempts (a worker lost, then retried) are RETRIED.

    Their runs stay FAILED in MLflow with the reason; they are neither counted as failed jobs nor rerun.
    """
    done = {row["job"] for row in rows if row["status"] == "FINISHED"}
    for row in rows:
        if row["status"] != "FINISHED" and row["job"] in done:
            row["error"] = f"{row['status']}, then retried and FINISHED: {row['error']}".rstrip(": ")
            row["status"] = RETRIED


NO_JOB_STARTED = (
    "no job of the sweep started: the sweeper or the launcher stopped it before its first job "
    "(its message is in the terminal above)"
)


def finalize_dry_run(state: SweepState) -> dict:
    """One line for a dry-run sweep: configs composed, valid and invalid (with why); nothing logged."""
    records, silent = read_records(state.sweep_dir) if state.sweep_dir.is_dir() else ([], [])
    bad = [r for r in records if not r.get("valid")]
    valid = len(records) - len(bad)
    line = (
        f"layerlab: dry run: {len(records) + len(silent)} config(s) composed, {valid} valid (validated and built), "
        f"{len(bad) + len(silent)} invalid; nothing was logged"
    )
    print(line + ("." if not bad and not silent else ":"), flush=True)
    for r in bad:
        print(f"  job {r.get('job')} ({' '.join(r.get('overrides', []))}): {r.get('error', '')}", flush=True)
    for name in silent:
        print(f"  job {name}: ended without a result (see its output in {state.sweep_dir / name})", flush=True)
    return {"status": "DRY_RUN", "valid": valid, "invalid": len(bad) + len(silent)}


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def ended_without_run_rows(sweep_dir, seen_jobs: set[str]) -> list[dict]:
    """Rows for the jobs whose status file says they ended FAILED, or whose process is gone, and that left no
    MLflow run: e.g. a fused job that died before its replicas' runs were created (one row per replica)."""
    rows = []
    for job in read_statuses(sweep_dir):
        status = view.state(job)
        if status in view.DONE or status == view.RUNNING:
            continue
        first = (str(job.get("error") or "").strip().splitlines() or [""])[0]
        error = "its process is gone (killed, out of memory?)" if status == view.LOST else first
        for number, overrides in solo_jobs(job.get("overrides", []), job["job"]):
            if number not in seen_jobs:
                rows.append(job_row(number, "FAILED", overrides, error or "ended without a run"))
    return rows


def _summary_markdown(state: SweepState, rows, failed, interrupted: bool) -> str:
    lines = [
        f"# Sweep {state.sweep_id}",
        "",
        f"Experiment `{state.experiment}`, parent run `{state.parent_run_id}`"
        + (" (interrupted)" if interrupted else ""),
        "",
        f"| job | status | overrides | {state.metric.val} | {state.metric.test} | run id |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['job']} | {r['status']} | `{r['overrides']}` | {_fmt(r['val'])} | "
            f"{_fmt(r['test'])} | `{r['run_id']}` |"
        )
    if failed:
        lines += ["", "## Jobs that did not finish", ""]
        for r in failed:
            lines += [
                f"- job {r['job']} ({r['status']}): {r['error'] or 'see error.txt in the run'}",
                f"  rerun alone: `{r['rerun']}`",
            ]
        lines += ["", f"Complete the sweep (runs only the jobs without a FINISHED run): `{state.complete}`"]
    return "\n".join(lines) + "\n"


def _summary_terminal(state: SweepState, rows, failed, status: str, report) -> str:
    jobs = [row for row in rows if row["status"] != RETRIED]  # a retried job counts once
    unseen = (state.planned_jobs or 0) - len({row["job"] for row in jobs})  # never started, not even in a ledger
    out = [
        f"\nlayerlab: sweep {state.sweep_id} {status}: {len(jobs) - len(failed)}/{len(jobs)} jobs finished "
        + (f"and {unseen} of the {state.planned_jobs} planned never started " if unseen > 0 else "")
        + f"(parent run {state.parent_run_id}, experiment {state.experiment!r})"
    ]
    for r in failed:
        out.append(f"  job {r['job']} {r['status']}: {r['error'][:300]}\n    rerun alone: {r['rerun']}")
    if failed:
        out.append(f"  complete the sweep (only the jobs without a FINISHED run):\n    {state.complete}")
    if report:
        out.append(report.get("table", ""))
        out.extend(report.get("verdicts", []) or [])
    if state.rounds:
        out.append(
            f"rounds (hydra/sweeper=rounds): {state.rounds} See rounds.md for the repeated confidence intervals."
        )
        out.append(
            f"comparison: {state.sweep_dir / 'comparison' / 'comparison.md'} (also in the parent run's artifacts)"
        )
    out.append(
        f"browse: {open_hint(state.uri)}, experiment {state.experiment!r}, "
        f"the run 'sweep {state.sweep_id}' and its children"
    )
    return "\n".join(out)
