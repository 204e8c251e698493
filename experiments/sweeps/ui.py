"""What a sweep shows in the MLflow UI: readable child names, the parent's description, group metrics, best run.

* children are renamed by what differs between them
  (``activation=abs model=lambda_mlp seed=3``);
* the parent's description (MLflow's ``mlflow.note.content`` tag, shown on
  its page) holds the group table, the factor comparisons and the verdicts
  in words;
* the parent logs, per group, the mean and the 95% CI half width of the
  compared metric (``test_acc_mean/activation:abs model:class_mlp``...), which
  the chart view plots side by side;
* the tag and param ``best_run`` name the best child by the *validation*
  metric (choosing by the test value would leak the test set into the choice);
  the param is written once, so a reopened parent's tag is the one to read.
"""

from __future__ import annotations

import json
import math
import re

from experiments.config.overrides import parse_overrides
from experiments.config.schema import SweepSchema
from experiments.job.naming import name_from, swept_keys
from experiments.sweeps.state import SweepState
from experiments.tracking import tags

NOTE_TAG = "mlflow.note.content"  # MLflow's own tag: the run's description in the UI
MAX_TAG_CHARS = 8000  # MLflow refuses longer tag values


def compare_options(sweep: SweepSchema) -> dict:
    """``replicate_key``, ``compare_by``, ``all_pairs``, ``min_effect``, ``equivalence_margin`` of the sweep group,
    as plain values.

    Args:
        sweep: the sweep's ``sweep`` group (:class:`~experiments.config.schema.SweepSchema`).
    """
    by = sweep.compare_by
    if isinstance(by, str):
        by = [by]
    return {
        "replicate_key": str(sweep.replicate_key),
        "compare_by": [str(k) for k in by] if by else None,
        "all_pairs": bool(sweep.all_pairs),
        "min_effect": sweep.min_effect,
        "equivalence_margin": sweep.equivalence_margin,
    }


def _override_values(run) -> dict[str, str]:
    overrides = parse_overrides(json.loads(run.data.tags.get(tags.OVERRIDES, "[]") or "[]"))
    return {o.key: o.value for o in overrides if o.value is not None and not o.is_hydra}


def rename_children(client, runs: list, replicate_key: str, sweep_overrides: list[str] = ()) -> None:
    """Name each child by the override keys whose values differ between the sweep's children, and the keys the
    sweep sweeps: a search whose trials all drew ``activation=abs`` still names the activation of each.

    Args:
        client: an ``MlflowClient``.
        runs: the sweep's child runs.
        replicate_key: shown last in the name.
        sweep_overrides: the sweep's own overrides as typed (its parent's tag).
    """
    values = [_override_values(r) for r in runs]
    keys = sorted({k for v in values for k in v})
    swept = swept_keys(sweep_overrides)
    differ = [k for k in keys if k in swept or len({v.get(k) for v in values}) > 1]
    for run, v in zip(runs, values):
        name = name_from({k: v.get(k, "(default)") for k in differ}, replicate_key)
        if name and name != run.info.run_name:
            client.update_run(run.info.run_id, name=name)


def metric_label(text: str) -> str:
    """A string MLflow accepts in a metric name (letters, digits, ``_ - . : space``)."""
    return re.sub(r"[^\w.\- :]", "_", text).strip() or "all runs"


def group_metrics(summary) -> dict[str, float]:
    """Per group: mean and CI half width of the compared test metric, and mean of its val metric.

    Args:
        summary: output of :func:`experiments.analysis.summarize.summarize`.

    Returns:
        e.g. ``{"test_acc_mean/activation:abs model:class_mlp": 0.927, "test_acc_ci95/...": 0.0077, ...}``.
    """
    cols = list(summary.columns)
    keys = cols[1 : cols.index("n")]
    test_p = next(c[:-5] for c in cols if c.startswith("test_") and c.endswith("_mean"))
    val_p = next(c[:-5] for c in cols if c.startswith("val_") and c.endswith("_mean"))
    out = {}
    for _, row in summary.iterrows():
        label = metric_label(name_from({k: str(row[k]) for k in keys}).replace("=", ":")) if keys else "all runs"
        for name, value in (
            (f"{test_p}_mean", row[f"{test_p}_mean"]),
            (f"{test_p}_ci95", row[f"{test_p}_ci95"]),
            (f"{val_p}_mean", row[f"{val_p}_mean"]),
        ):
            if value is not None and math.isfinite(float(value)):
                out[f"{name}/{label}"] = float(value)
    return out


def publish(
    client, state: SweepState, runs: list, report: dict | None, best_run_id: str | None, sweep_overrides: list[str]
) -> None:
    """Child names, the parent's description, group metrics and ``best_run``: the sweep at a glance.

    Args:
        client: an ``MlflowClient``.
        state: the sweep.
        runs: its child runs (any status), as MLflow ``Run`` objects.
        report: what :func:`experiments.analysis.compare.compare_sweep` returned, or None.
        best_run_id: the best child by validation (:func:`experiments.sweeps.champion.best_row`), or None.
        sweep_overrides: the sweep's own overrides as typed (its parent's tag; swept keys stay in the names).
    """
    pid = state.parent_run_id
    rename_children(client, runs, state.compare_options.get("replicate_key", "seed"), sweep_overrides)
    best_line = None
    if best_run_id is not None:
        best = client.get_run(best_run_id)  # its new name
        value = best.data.metrics[state.metric.val]
        best_line = (
            f"**Best run** (by {state.metric.val}, the validation value; never by test): "
            f"`{best.info.run_name}` ({state.metric.val}={value:.4f}, run id `{best.info.run_id}`)."
        )
        client.set_tag(pid, tags.BEST_RUN, best.info.run_name)
        client.set_tag(pid, tags.BEST_RUN_ID, best.info.run_id)
        if tags.BEST_RUN not in client.get_run(pid).data.params:
            # A param never changes in MLflow: a reopened parent (a continued study) keeps its first one, and its
            # tag and description name the best run of every trial so far.
            client.log_param(pid, tags.BEST_RUN, best.info.run_name)
    finished = sum(r.info.status == "FINISHED" for r in runs)
    where = [
        "Full report, CSV files and learning curves: the artifacts `comparison/` of this run; "
        "the job list: `sweep_summary.md`."
    ]
    if report is not None and report.get("description"):
        text = report["description"] + ("\n" + best_line + "\n" if best_line else "") + "\n" + "\n".join(where) + "\n"
        for name, value in group_metrics(report["summary"]).items():
            client.log_metric(pid, name, value)
    else:
        text = (
            f"## Sweep {state.sweep_id}\n\n{finished}/{len(runs)} jobs finished; no comparison "
            f"(sweep.compare=false, or it failed: see the terminal).\n\n" + (best_line or "") + "\n"
        )
    if state.rounds:  # the verdicts above are fixed-sample tests: say how many rounds of seeds they rest on
        text += (
            f"\n**Rounds** (`hydra/sweeper=rounds`): {state.rounds} Repeated confidence intervals, valid "
            "whichever round it stopped at: the artifact `rounds.md`.\n"
        )
    if state.note:
        text = state.note + "\n" + text
    client.set_tag(
        pid,
        NOTE_TAG,
        text
        if len(text) <= MAX_TAG_CHARS
        else text[: MAX_TAG_CHARS - 80] + "\n\n(cut here: the full text is in comparison/comparison.md)\n",
    )
