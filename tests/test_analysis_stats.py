"""The confidence intervals of experiments.analysis (scipy's t-tests and t distribution) against hand-computed values.

With 2 degrees of freedom the t distribution has closed forms, which is how
the expected numbers below were worked out on paper:
t(0.975; 2) = sqrt(2) * 0.95 / sqrt(1 - 0.95**2) = 4.302653, the two-sided
p-value of t is 1 - |t| / sqrt(2 + t**2); and t(0.975; 1) = tan(0.475 pi) = 12.706205.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from experiments.analysis.curves import curve_band
from experiments.analysis.stats import ci_half_width, mean_ci, pairwise_tests


def runs(values: dict[str, dict[int, float]], key: str = "test_sparse_categorical_accuracy") -> pd.DataFrame:
    """A FINISHED runs frame: {activation: {seed: final value of ``key``}}.

    Args:
        values: per group, per seed, the final value.
        key: the MLflow metric key the values are logged under.
    """
    rows = [
        {
            "run_id": f"{act}-{seed}",
            "status": "FINISHED",
            "params.seed": str(seed),
            "tags.layerlab.overrides": json.dumps([f"model.activation={act}", f"seed={seed}"]),
            f"metrics.{key}": v,
        }
        for act, by_seed in values.items()
        for seed, v in by_seed.items()
    ]
    return pd.DataFrame(rows)


def test_t_quantiles_used_below():
    assert math.sqrt(2) * 0.95 / math.sqrt(1 - 0.95**2) == pytest.approx(4.302653, abs=1e-6)
    assert math.tan(0.475 * math.pi) == pytest.approx(12.706205, abs=1e-6)


def test_mean_ci_half_width_by_hand():
    # [0.80, 0.84, 0.88]: mean 0.84, sd 0.04, half = 4.302653 * 0.04 / sqrt(3) = 0.099366
    mean, std, half, n = mean_ci([0.80, 0.84, 0.88])
    assert (mean, std, n) == (pytest.approx(0.84), pytest.approx(0.04), 3)
    assert half == pytest.approx(0.099366, abs=1e-6)
    assert ci_half_width(0.04, 3) == pytest.approx(0.099366, abs=1e-6)
    assert math.isnan(ci_half_width(0.04, 1))


def test_paired_difference_ci_by_hand():
    # Per-seed differences abs - relu: 0.10, 0.13, 0.13 -> mean 0.12, sd sqrt(0.0003), se 0.01,
    # t = 12, p = 1 - 12 / sqrt(146) = 0.006873; CI 0.12 -/+ 4.302653 * 0.01.
    df = runs({"abs": {0: 0.80, 1: 0.84, 2: 0.88}, "relu": {0: 0.70, 1: 0.71, 2: 0.75}})
    row = pairwise_tests(df).iloc[0]
    assert (row["group_a"], row["group_b"], row["test"], row["n_pairs"]) == (
        "model.activation=abs",
        "model.activation=relu",
        "paired",
        3,
    )
    assert row["diff"] == pytest.approx(0.12)
    assert row["paired_p"] == pytest.approx(0.006873, abs=1e-6)
    assert [row["diff_ci_low"], row["diff_ci_high"]] == pytest.approx([0.076973, 0.163027], abs=1e-6)
    assert "95% CI 0.0770 to 0.1630" in row["verdict"]


def test_welch_difference_ci_by_hand():
    # Other seeds per group: Welch. Equal variances (0.02) and n = 2 give 2 degrees of freedom:
    # se = sqrt(0.02/2 + 0.02/2) = 0.141421, t = -0.3 / se = -2.121320, p = 1 - 2.121320 / sqrt(6.5) = 0.167950,
    # CI -0.3 -/+ 4.302653 * 0.141421 = [-0.908487, 0.308487].
    df = runs({"abs": {0: 0.1, 1: 0.3}, "relu": {5: 0.4, 6: 0.6}})
    row = pairwise_tests(df).iloc[0]
    assert row["test"] == "welch" and math.isnan(row["paired_p"])
    assert row["diff"] == pytest.approx(-0.3)
    assert row["welch_p"] == pytest.approx(0.167950, abs=1e-6)
    assert [row["diff_ci_low"], row["diff_ci_high"]] == pytest.approx([-0.908487, 0.308487], abs=1e-6)
    assert not row["significant"]


def test_loss_metric_by_name_is_lower_better_and_the_ci_keeps_its_sign():
    # A loss: abs lower by 0.12 -> abs better; the verdict's CI is "better minus worse" in the good direction.
    df = runs({"abs": {0: 0.20, 1: 0.21, 2: 0.25}, "relu": {0: 0.30, 1: 0.34, 2: 0.38}}, key="test_loss")
    row = pairwise_tests(df, "loss").iloc[0]
    assert row["metric"] == "test_loss"
    assert row["diff"] == pytest.approx(-0.12)
    assert [row["diff_ci_low"], row["diff_ci_high"]] == pytest.approx([-0.163027, -0.076973], abs=1e-6)
    assert row["better"] == "model.activation=abs"
    assert "by 0.1200 (lower; 95% CI 0.0770 to 0.1630)" in row["verdict"]


def test_curve_band_by_hand():
    # Epoch 1: [0.5, 0.7] -> mean 0.6, sd 0.141421, half = 12.706205 * 0.141421 / sqrt(2) = 1.2706205.
    # Epoch 2: one run only -> mean 0.6, no band.
    mean, half = curve_band(np.array([[0.5, 0.6], [0.7, np.nan]]))
    assert mean == pytest.approx([0.6, 0.6])
    assert half[0] == pytest.approx(1.2706205, abs=1e-6)
    assert math.isnan(half[1])
