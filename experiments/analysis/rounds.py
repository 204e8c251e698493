"""A sweep that adds replicates in rounds: what each round's runs say to the stopping rule, and its record.

The rule itself is :mod:`experiments.analysis.sequential`; this module turns
the runs of a sweep so far into its input (each simple effect's paired
differences, in the order of the factor table), picks the next replicates
(new ones, never reused), and writes the outcome as Markdown for the sweep's
parent run.  The interactions are reported at the end as usual but do not
drive the stopping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from experiments.analysis.factors import simple_effects
from experiments.analysis.formatting import markdown_table
from experiments.analysis.groups import SEED_KEY
from experiments.analysis.metric import MetricLike, pretty_metric, resolve_metric
from experiments.analysis.runs import finished
from experiments.analysis.sequential import Decision, StoppingRule
from experiments.analysis.stats import pair_by_replicate


def paired_differences(
    df: pd.DataFrame,
    metric: MetricLike = None,
    *,
    mode: str | None = None,
    replicate_key: str = SEED_KEY,
    compare_by: Sequence[str] | None = None,
) -> list[tuple[str, np.ndarray | None]]:
    """Each simple effect's label and per-replicate differences A - B (``None`` where the replicates do not pair).

    Args:
        df: runs frame of the sweep so far; only FINISHED runs are used.
        metric: the compared metric.
        mode: ``"max"``/``"min"``.
        replicate_key: the key that pairs runs.
        compare_by: the factors to compare along (``None``: every swept key).
    """
    spec = resolve_metric(df, metric, mode)
    out = []
    for factor, where, la, lb, a, b in simple_effects(finished(df), replicate_key, compare_by):
        pair = pair_by_replicate(a, b, spec.test, replicate_key)
        label = f"{factor}: {la} − {lb}" + (f" (within {where})" if where else "")
        out.append((label, None if pair is None else pair[0] - pair[1]))
    return out


def next_replicates(used: Sequence[int], count: int) -> list[int]:
    """``count`` new replicate values above every one used so far: a round never reuses a seed."""
    start = max(used) + 1 if len(used) else 0
    return list(range(start, start + count))


def rounds_headline(decision: Decision) -> str:
    """One sentence for the verdict: after how many rounds (and replicates per group) the sweep stopped, and why."""
    n = decision.intervals[0].n if decision.intervals else 0
    return (
        f"Stopped after round {decision.look} of at most {decision.rounds} ({n} replicates per group): "
        f"{decision.reason}."
    )


def rounds_markdown(rule: StoppingRule, decision: Decision, labels: Sequence[str], metric: str) -> str:
    """The outcome of the rounds: how many, why they stopped, and each difference's repeated confidence interval.

    Args:
        rule: the stopping rule.
        decision: the last round's decision.
        labels: the comparisons, in the order of ``decision.intervals``.
        metric: the compared metric's key (``test_...``).
    """
    rows = [
        [label, f"{iv.estimate:+.4f}", f"{iv.low:.4f} to {iv.high:.4f}", f"±{iv.half_width:.4f}", status]
        for label, iv, status in zip(labels, decision.intervals, decision.statuses)
    ]
    return "\n".join(
        [
            "## Rounds",
            "",
            rounds_headline(decision),
            "",
            f"Repeated confidence intervals of the mean paired difference in {pretty_metric(metric)} (alpha "
            f"{rule.alpha:g} over the family, Lan-DeMets O'Brien-Fleming spending over the rounds; valid whichever "
            "round the sweep stopped at). The verdicts of the comparison use fixed-sample tests and do not account "
            "for the rounds; these intervals do.",
            "",
            markdown_table(["comparison", "difference", "repeated CI", "half width", "status"], rows),
            "",
        ]
    )
