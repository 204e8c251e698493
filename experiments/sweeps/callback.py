"""Multirun support: one MLflow parent run per sweep, and its summary at the end.

The :class:`SweepCallback` (configured under ``hydra.callbacks``) runs in the
process that launches the jobs:

* ``on_multirun_start`` creates the tracking store and the experiment *once*
  (several workers migrating a fresh SQLite store at once corrupt it), opens
  the parent run, splits the CPU threads between parallel workers, and hands
  the ids to the jobs through the environment;
* the end of the sweep (``on_multirun_end``, or :func:`finalize_active` from
  ``runner.py`` when Hydra skips that hook because a job failed) lists every
  job with its status, runs the statistical comparison, logs both to the
  parent run and closes it FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import json
import os
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.tracking import store as tracking

TAG = tracking.TAG_PREFIX
_ACTIVE: "SweepState | None" = None
EVER_STARTED = False  # a sweep ran in this process (its launcher may own worker processes)


@dataclass
class SweepState:
    uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    sweep_id: str
    sweep_dir: Path
    compare: bool = True
    target_accuracy: float = 0.9
    finalized: bool = False
    env_set: list = field(default_factory=list)


def _sel(cfg, path, default=None):
    try:
        value = OmegaConf.select(cfg, path, default=default)
    except Exception:
        return default
    return default if value is None else value


def worker_threads(config: DictConfig) -> int | None:
    """CPU threads per job for a parallel launcher (None for sequential ones)."""
    target = str(_sel(config, "hydra.launcher._target_", ""))
    if "joblib" not in target.lower():
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(_sel(config, "hydra.launcher.n_jobs", -1))
    if n_jobs <= 0:  # joblib: -1 = all cores, -2 = all but one, ...
        n_jobs = max(1, cores + 1 + n_jobs)
    return max(1, cores // n_jobs)


class SweepCallback(Callback):
    """Hydra callback that groups a multirun under one MLflow parent run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _ACTIVE
        from experiments.errors import LayerlabError

        try:
            _ACTIVE = start_sweep(config)
        except LayerlabError as exc:
            # Hydra would turn an exception here into a warning and run every job anyway.
            print(f"layerlab: error: {exc}", flush=True)
            raise SystemExit(exc.exit_code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        finalize_active(interrupted=False)


def start_sweep(config: DictConfig) -> SweepState:
    import mlflow

    global EVER_STARTED
    EVER_STARTED = True
    uri = tracking.resolve_uri(_sel(config, "tracking.uri"))
    tracking.check_store(uri, float(_sel(config, "tracking.timeout_s", 10)))
    experiment = str(_sel(config, "tracking.experiment", "layerlab"))
    exp_id = tracking.ensure_experiment(uri, experiment, _sel(config, "tracking.artifact_root"))
    sweep_dir = Path(str(_sel(config, "hydra.sweep.dir", "multirun")))
    sweep_id = f"{sweep_dir.name.replace(':', '-')}-{uuid.uuid4().hex[:6]}"
    overrides = [str(o) for o in (_sel(config, "hydra.overrides.task", []) or [])]
    client = mlflow.MlflowClient(uri)
    parent = client.create_run(exp_id, run_name=f"sweep {sweep_id}", tags={
        f"{TAG}role": "parent",
        f"{TAG}sweep_id": sweep_id,
        f"{TAG}sweep_dir": str(sweep_dir.resolve()),
        f"{TAG}sweep_dir_raw": str(sweep_dir),  # what a job on another machine sees in its own config
        f"{TAG}overrides": tracking.tags_json(overrides),
        **tracking.git_state(),
    })
    state = SweepState(uri=uri, experiment=experiment, experiment_id=exp_id, parent_run_id=parent.info.run_id,
                       sweep_id=sweep_id, sweep_dir=sweep_dir,
                       compare=bool(_sel(config, "sweep.compare", True)),
                       target_accuracy=float(_sel(config, "sweep.target_accuracy", 0.9)))
    env = {tracking.ENV_PARENT_RUN: state.parent_run_id, tracking.ENV_EXPERIMENT_ID: exp_id,
           tracking.ENV_SWEEP_ID: sweep_id, tracking.ENV_TRACKING_URI: uri}
    threads = worker_threads(config)
    if threads:
        # Read by TensorFlow when it starts in each fresh worker: no oversubscription.
        env.update({"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
                    "OMP_NUM_THREADS": str(threads), "LAYERLAB_THREADS": str(threads)})
    for k, v in env.items():
        os.environ[k] = v
    state.env_set = list(env)
    print(f"layerlab: sweep {sweep_id}: parent run {state.parent_run_id} in experiment {experiment!r}"
          + (f", {threads} TF thread(s) per parallel job" if threads else ""), flush=True)
    return state


def find_parent(uri: str, experiment_id: str, sweep_dir: str):
    """The RUNNING parent run of the sweep writing to ``sweep_dir`` (for jobs that did not inherit the env)."""
    from experiments.tracking.store import find_runs

    runs = find_runs(uri, experiment_id, f"tags.`{TAG}role` = 'parent' and tags.`{TAG}sweep_dir_raw` = "
                                         f"'{sweep_dir}'", statuses=["RUNNING"])
    return runs[0] if runs else None


def finalize_active(interrupted: bool, failed: bool = False) -> None:
    """Finalise the sweep started in this process, if any and not done yet."""
    global _ACTIVE
    state, _ACTIVE = _ACTIVE, None
    if state is None or state.finalized:
        return
    state.finalized = True
    for k in state.env_set:
        os.environ.pop(k, None)
    try:
        finalize(state, interrupted, failed)
    except Exception as exc:  # never mask the sweep's own outcome
        print(f"layerlab: could not finalise sweep {state.sweep_id}: {type(exc).__name__}: {exc}", flush=True)
        try:
            import mlflow

            mlflow.MlflowClient(state.uri).set_terminated(state.parent_run_id, "KILLED" if interrupted else "FAILED")
        except Exception:
            pass


def finalize(state: SweepState, interrupted: bool, failed_exit: bool = False) -> dict:
    """List the jobs, compare them, log the reports and close the parent run."""
    import mlflow

    client = mlflow.MlflowClient(state.uri)
    runs = client.search_runs([state.experiment_id], filter_string=f"tags.`{TAG}sweep_id` = '{state.sweep_id}' "
                              f"and tags.`{TAG}role` = 'job'", max_results=5000)
    for r in runs:  # a worker killed hard leaves its run RUNNING
        if r.info.status == "RUNNING":
            client.set_terminated(r.info.run_id, "KILLED")
            r.info._status = "KILLED"
    rows = []
    for r in sorted(runs, key=lambda r: int(r.data.tags.get(f"{TAG}job_num", "0") or 0)):
        overrides = json.loads(r.data.tags.get(f"{TAG}overrides", "[]"))
        rows.append({
            "job": r.data.tags.get(f"{TAG}job_num", "?"), "status": r.info.status, "run_id": r.info.run_id,
            "overrides": " ".join(overrides),
            "val_acc": r.data.metrics.get("val_sparse_categorical_accuracy"),
            "test_acc": r.data.metrics.get("test_sparse_categorical_accuracy"),
            "error": r.data.tags.get(f"{TAG}error", ""),
            "rerun": "python runner.py " + " ".join(shlex.quote(o) for o in overrides),
        })
    failed = [row for row in rows if row["status"] != "FINISHED"]
    out = state.sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    summary_md = out / "sweep_summary.md"
    summary_md.write_text(_summary_markdown(state, rows, failed, interrupted))
    client.log_artifact(state.parent_run_id, str(summary_md))
    report = None
    finished = [row for row in rows if row["status"] == "FINISHED"]
    if state.compare and len(finished) >= 1:
        try:
            from experiments.analysis.compare import compare_sweep

            report = compare_sweep(state.uri, state.experiment, sweep_id=state.sweep_id,
                                   out_dir=out / "comparison", target_accuracy=state.target_accuracy)
            client.log_artifacts(state.parent_run_id, str(out / "comparison"), "comparison")
        except Exception as exc:
            print(f"layerlab: comparison skipped: {type(exc).__name__}: {exc}", flush=True)
    # No job at all (the launcher itself failed) or a non-zero exit is a failed sweep too.
    status = "KILLED" if interrupted else ("FAILED" if failed or not rows or failed_exit else "FINISHED")
    client.log_metric(state.parent_run_id, "jobs_finished", len(finished))
    client.log_metric(state.parent_run_id, "jobs_failed", len(failed))
    client.set_terminated(state.parent_run_id, status)
    print(_summary_terminal(state, rows, failed, status, report), flush=True)
    return {"status": status, "rows": rows, "report": report}


def _fmt(v) -> str:
    return "" if v is None else f"{v:.4f}"


def _summary_markdown(state: SweepState, rows, failed, interrupted: bool) -> str:
    lines = [f"# Sweep {state.sweep_id}", "",
             f"Experiment `{state.experiment}`, parent run `{state.parent_run_id}`"
             + (" (interrupted)" if interrupted else ""), "",
             "| job | status | overrides | val acc | test acc | run id |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['job']} | {r['status']} | `{r['overrides']}` | {_fmt(r['val_acc'])} | "
                     f"{_fmt(r['test_acc'])} | `{r['run_id']}` |")
    if failed:
        lines += ["", "## Jobs that did not finish", ""]
        for r in failed:
            lines += [f"- job {r['job']} ({r['status']}): {r['error'] or 'see error.txt in the run'}",
                      f"  rerun alone: `{r['rerun']}`"]
    return "\n".join(lines) + "\n"


def _summary_terminal(state: SweepState, rows, failed, status: str, report) -> str:
    out = [f"\nlayerlab: sweep {state.sweep_id} {status}: {len(rows) - len(failed)}/{len(rows)} jobs finished "
           f"(parent run {state.parent_run_id}, experiment {state.experiment!r})"]
    for r in failed:
        out.append(f"  job {r['job']} {r['status']}: {r['error'][:300]}\n    rerun alone: {r['rerun']}")
    if report:
        out.append(report.get("table", ""))
        out.extend(report.get("verdicts", []) or [])
        out.append(f"comparison: {state.sweep_dir / 'comparison' / 'comparison.md'} (also in the parent run's artifacts)")
    out.append(f"browse: {tracking.open_hint(state.uri)}, experiment {state.experiment!r}, "
               f"the run 'sweep {state.sweep_id}' and its children")
    return "\n".join(out)
