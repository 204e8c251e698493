"""The best model of a sweep: named on the parent run and, with ``sweep.register_as=NAME``, registered.

The best child is the FINISHED job with the best VALIDATION value of the
compared metric (``val_<metric>``, :func:`experiments.config.metrics.compared_metric`);
the test metric never chooses, so the test set stays an unbiased estimate.
The parent run gets the tags ``layerlab.best_run_id`` and
``layerlab.best_model_uri`` and the metric ``best_val_<metric>``.

With ``sweep.register_as=NAME`` the best child's model becomes a new version of
the registered model ``NAME``; the alias ``champion`` moves to it only if its
``val_<metric>`` beats the one of the run behind the version that holds the
alias now (a first version always takes it). ``models:/NAME@champion`` then
always names the best model seen so far on that metric.
"""

from __future__ import annotations

import math

from experiments.sweeps.state import SweepState
from experiments.tracking import tags

ALIAS = "champion"
REGISTER_PARAM = "sweep.register_as"  # the job's config, flattened to params (experiments.job.artifacts)


def best_row(state: SweepState, rows: list[dict]) -> dict | None:
    """The FINISHED row with the best validation value (the first of equals), or None."""
    best = None
    for row in rows:
        val = row.get("val")
        if row.get("status") != "FINISHED" or val is None or math.isnan(val):
            continue
        if best is None or state.metric.better(val, best["val"]):
            best = row
    return best


def choose_and_register(state: SweepState, client, rows: list[dict], best: dict | None = None) -> str:
    """Name the best child on the parent run, register its model if asked; the lines to print.

    Args:
        rows: the sweep's jobs (``status``, ``run_id``, ``val``, ``job``), as the sweep summary lists them.
        best: the row :func:`best_row` chose, if the caller has it already.
    """
    best = best if best is not None else best_row(state, rows)
    try:
        return _choose_and_register(state, client, best)
    except Exception as exc:  # the sweep's own summary must still be written
        return f"layerlab: best model: skipped: {type(exc).__name__}: {exc}"


def _choose_and_register(state: SweepState, client, best: dict | None) -> str:
    val_key = state.metric.val
    if best is None:
        return f"layerlab: best model: none (no FINISHED job has {val_key})"
    run = client.get_run(best["run_id"])
    model_uri = run.data.tags.get(tags.MODEL_URI)
    client.set_tag(state.parent_run_id, tags.BEST_RUN_ID, best["run_id"])
    client.log_metric(state.parent_run_id, f"best_{val_key}", float(best["val"]))
    lines = [
        f"layerlab: best model: job {best['job']} (run {best['run_id']}), {val_key}={best['val']:.4f} "
        f"({state.metric.mode}), "
        + (f"model {model_uri}" if model_uri else "no model logged (tracking.log_model=false)")
    ]
    if model_uri:
        client.set_tag(state.parent_run_id, tags.BEST_MODEL_URI, model_uri)
    name = run.data.params.get(REGISTER_PARAM)
    if not name or name in ("null", "None"):
        return lines[0]
    if not model_uri:
        return lines[0] + f"\nlayerlab: registry: nothing registered as {name!r}: the best job logged no model"
    lines.append(_register(state, client, name, run, model_uri, float(best["val"])))
    return "\n".join(lines)


def _register(state: SweepState, client, name: str, run, model_uri: str, value: float) -> str:
    from mlflow.exceptions import MlflowException

    val_key = state.metric.val
    try:
        client.create_registered_model(name, description="registered by layerlab sweeps (sweep.register_as)")
    except MlflowException as exc:
        if "ALREADY_EXISTS" not in str(exc.error_code):
            raise
    model_id = model_uri.removeprefix("models:/")
    source = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(
        name,
        source=source,
        run_id=run.info.run_id,
        model_id=model_id,
        tags={val_key: f"{value:.6g}", tags.SWEEP_ID: state.sweep_id},
    )
    new = f"models:/{name}/{version.version}"
    try:
        holder = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        holder = None
    if holder is None:
        client.set_registered_model_alias(name, ALIAS, version.version)
        return f"layerlab: registry: {new} registered; it is the first, so {ALIAS} -> version {version.version}"
    held = client.get_run(holder.run_id).data.metrics.get(val_key) if holder.run_id else None
    if held is None:
        return (
            f"layerlab: registry: {new} registered; {ALIAS} stays on version {holder.version}, whose run has "
            f"no {val_key} to compare with (move it yourself: MlflowClient().set_registered_model_alias("
            f"{name!r}, {ALIAS!r}, {version.version!r}))"
        )
    if state.metric.better(value, held):
        client.set_registered_model_alias(name, ALIAS, version.version)
        return (
            f"layerlab: registry: {new} registered; {ALIAS} moved from version {holder.version} to "
            f"{version.version}: {val_key} {value:.4f} beats {held:.4f}"
        )
    return (
        f"layerlab: registry: {new} registered; {ALIAS} stays on version {holder.version}: "
        f"{val_key} {value:.4f} does not beat {held:.4f}"
    )
