"""The rounds of ``sweep.until.*``: the stopping rule, the look after each round, the record of the outcome.

Imported by :mod:`hydra_plugins.layerlab_rounds.rounds_sweeper` only when a sweep asks for rounds: the
statistics behind it load SciPy and pandas, and Hydra imports every sweeper plugin at each ``runner.py``
start, so importing them at the top of the plugin made every run and every sweep pay for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mlflow

from experiments.analysis.rounds import next_replicates, paired_differences, rounds_headline, rounds_markdown
from experiments.analysis.runs import load_runs
from experiments.analysis.sequential import Decision, StoppingRule, decide
from experiments.errors import ConfigError, LayerlabError
from experiments.sweeps import current_sweep
from experiments.tracking import tags

__all__ = ["decide_round", "next_replicates", "record", "rule"]


def rule(until: dict, given: list[int], margin: float | None) -> StoppingRule:
    """The stopping rule of ``sweep.until`` for the seeds given first."""
    cap = until.get("max_replicates")
    if not cap or cap < len(given):
        raise ConfigError(
            "rounds need a cap of at least the seeds given first",
            path="sweep.until.max_replicates",
            value=cap,
            fix=f"e.g. sweep.until.max_replicates={max(2 * len(given), 4)}",
        )
    if len(given) < 2:
        raise ConfigError(
            "the first round needs at least 2 seeds per group",
            path="sweep.until",
            value=given,
            fix="give at least two seeds first, e.g. seed=0,1,2",
        )
    return StoppingRule(
        first=len(given),
        step=int(until.get("step") or len(given)),
        max_replicates=int(cap),
        ci_half_width=until.get("ci_half_width"),
        verdict=bool(until.get("verdict")),
        margin=margin,
    )


def decide_round(rule: StoppingRule, key: str, n: int) -> tuple[Decision, list[str]]:
    """The stopping rule's look at the finished runs of the sweep so far (``n`` replicates per group)."""
    state = current_sweep().state
    if state is None or state.dry_run:
        raise ConfigError(
            "rounds need the sweep's MLflow parent run (not a dry run)",
            path="sweep.until",
            value=None,
            fix="run without dry_run=true, or without sweep.until",
        )
    runs = load_runs(state.uri, state.experiment, state.sweep_id, metric=state.metric.name, mode=state.metric.mode)
    pairs = paired_differences(
        runs,
        state.metric.name,
        mode=state.metric.mode,
        replicate_key=key,
        compare_by=state.compare_options.get("compare_by"),
    )
    broken = [label for label, diffs in pairs if diffs is None or len(diffs) != n]
    if broken or not pairs:
        raise LayerlabError(
            f"the rounds stopped after {n} seeds per group: {', '.join(broken) or 'nothing to compare'} "
            f"{'has' if len(broken) == 1 else 'have'} no complete pairing by {key} (a job failed?); the runs so "
            "far are kept and compared"
        )
    return decide(rule, [d for _, d in pairs]), [label for label, _ in pairs]


def record(rule: StoppingRule, decision: Decision, labels: Sequence[str]) -> None:
    """How the rounds ended: ``rounds.md`` in the sweep folder and on the parent run, and the tag it is found by."""
    state = current_sweep().state
    text = rounds_markdown(rule, decision, labels, state.metric.test)
    state.rounds = rounds_headline(decision)  # the final verdict (terminal, parent's description) says it too
    path = Path(state.sweep_dir) / "rounds.md"
    path.write_text(text, encoding="utf-8")
    print(text, flush=True)

    client = mlflow.MlflowClient(state.uri)
    client.set_tag(state.parent_run_id, tags.ROUNDS, str(decision.look))
    client.log_artifact(state.parent_run_id, str(path))
