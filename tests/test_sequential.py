"""The stopping rule for adding replicates in rounds (experiments.analysis.sequential), by simulation.

Synthetic per-seed differences, no training: many simulated sweeps, each adding
seeds in rounds and asking the rule after every round.  Seeded generators, so
the rates below are the same on every run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.analysis.sequential import (
    DIFFERENT,
    EQUIVALENT,
    UNDECIDED,
    StoppingRule,
    decide,
    repeated_interval,
    spent_alpha,
    t_boundaries,
)

ALPHA = 0.05
SWEEPS = 1000
# Simulation error of a rate near alpha over SWEEPS sweeps; 3 of them is the tolerance.
TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SWEEPS)
RULE = StoppingRule(first=4, step=4, max_replicates=20, alpha=ALPHA, verdict=True)  # looks at 4, 8, ..., 20


def run_sweep(rule: StoppingRule, diffs: np.ndarray) -> tuple[int, str]:
    """Ask the rule after every round; return (replicates used, the status it stopped with)."""
    for n in rule.looks():
        decision = decide(rule, [diffs[:n]])
        if decision.stop:
            return n, decision.statuses[0]
    raise AssertionError("the rule must stop at the cap")


def test_spending_and_the_first_boundary():
    # O'Brien-Fleming type: almost nothing spent early, all of alpha at the cap.
    spent = spent_alpha([0.2, 0.5, 1.0], ALPHA)
    assert spent[0] < 1e-5 and spent[1] < spent[2] and spent[2] == pytest.approx(ALPHA)
    looks = RULE.looks()
    bounds = t_boundaries(looks, RULE.max_replicates, ALPHA)
    # The first look alone: the exact t quantile of what the function spends by then.
    assert bounds[0] == pytest.approx(stats.t.isf(spent_alpha([looks[0] / 20], ALPHA)[0] / 2, looks[0] - 1))
    assert list(bounds) == sorted(bounds, reverse=True)  # ever less evidence needed as replicates accumulate
    # One look at the cap is the fixed-size t-test.
    assert t_boundaries((10,), 10, ALPHA)[0] == pytest.approx(stats.t.isf(ALPHA / 2, 9))


def test_no_true_difference_keeps_the_false_positive_rate_while_a_t_test_every_round_does_not():
    rng = np.random.default_rng(26)
    data = rng.normal(0.0, 0.01, size=(SWEEPS, RULE.max_replicates))
    results = [run_sweep(RULE, d) for d in data]
    rule_positives = sum(status == DIFFERENT for _, status in results)
    # By each look, no more than the spending function allows has been rejected.
    spent = spent_alpha([n / RULE.max_replicates for n in RULE.looks()], ALPHA)
    for n, allowed in zip(RULE.looks(), spent):
        assert sum(status == DIFFERENT and used <= n for used, status in results) / SWEEPS <= allowed + TOLERANCE
    # The naive procedure: a plain paired t-test after every round, stop at the first p < alpha
    # (scipy tests every simulated sweep at once, one look at a time).
    naive = np.zeros(SWEEPS, dtype=bool)
    for n in RULE.looks():
        naive |= stats.ttest_1samp(data[:, :n], 0.0, axis=1).pvalue < ALPHA
    naive_positives = int(naive.sum())
    print(f"false positives: rule {rule_positives / SWEEPS:.3f}, t-test every round {naive_positives / SWEEPS:.3f}")
    assert rule_positives / SWEEPS <= ALPHA + TOLERANCE
    assert naive_positives / SWEEPS > ALPHA + TOLERANCE
    assert naive_positives > 2 * rule_positives


def test_a_true_difference_stops_before_the_cap():
    rng = np.random.default_rng(7)
    data = rng.normal(0.01, 0.01, size=(200, RULE.max_replicates))  # a difference of one sd
    results = [run_sweep(RULE, d) for d in data]
    used = np.array([n for n, _ in results])
    assert np.mean([status == DIFFERENT for _, status in results]) > 0.9
    assert np.median(used) < RULE.max_replicates and np.mean(used) < RULE.max_replicates


def test_half_width_rule_stops_when_every_difference_is_known_to_within_w():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 0.01, 20), rng.normal(0.0, 0.002, 20)
    rule = StoppingRule(first=4, step=4, max_replicates=20, ci_half_width=0.004)
    first = decide(rule, [a[:4], b[:4]])
    assert not first.stop and first.look == 1 and first.rounds == 5
    n, decision = next((n, d) for n in rule.looks() if (d := decide(rule, [a[:n], b[:n]])).stop)
    assert all(iv.half_width <= 0.004 for iv in decision.intervals) or n == 20
    assert decision.reason.startswith("every difference known") or decision.reason.startswith("the cap")
    # The repeated interval is wider than the fixed-sample 95% interval of the same data.
    fixed = stats.ttest_1samp(a[:n], 0.0).confidence_interval(0.95)
    assert decision.intervals[0].half_width > (fixed.high - fixed.low) / 2


def test_equivalence_decides_and_statuses():
    assert repeated_interval([0.001, -0.001, 0.0005, 0.0], 0.95).status(0.01) == EQUIVALENT
    assert repeated_interval([0.02, 0.021, 0.019, 0.0205], 0.95).status(0.01) == DIFFERENT
    assert repeated_interval([0.02, -0.02, 0.01, -0.015], 0.95).status(0.01) == UNDECIDED
    with pytest.raises(ValueError, match="one of"):
        decide(RULE, [np.zeros(5)])
    with pytest.raises(ValueError, match="nothing to stop on"):
        StoppingRule(first=4, step=2, max_replicates=20)
