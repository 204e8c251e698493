"""What a comparison could see (detectable difference, replicates needed) and equivalence (TOST).

Every figure is checked against statsmodels computed here, independently, on the
same values; the end-to-end test reads real runs from an MLflow SQLite store.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from experiments.analysis import compare as cmp
from experiments.analysis.factors import factor_tests, interaction_tests
from experiments.analysis.stats import holm, pairwise_tests
from experiments.config.schema import validate
from experiments.errors import ConfigError
from tests.conftest import compose
from tests.test_compare import run_row

SEEDS = [0, 1, 2, 3, 4]
RELU = {0: 0.910, 1: 0.921, 2: 0.905, 3: 0.930, 4: 0.915}
# abs - relu per seed: a small, noisy gap (mean 0.0014, sd about 0.006): not significant with 5 seeds.
GAP = {0: 0.004, 1: -0.006, 2: 0.010, 3: -0.002, 4: 0.001}
ABS = {s: RELU[s] + GAP[s] for s in SEEDS}
POWER = 0.8
EXTRA = {0: 0.003, 1: -0.004, 2: 0.001, 3: 0.002, 4: -0.003}  # lambda_mlp's abs runs only: noise in the interaction


def close_frame(drop_abs_seed: int | None = None) -> pd.DataFrame:
    rows = [run_row("relu", s, RELU[s]) for s in SEEDS]
    rows += [run_row("abs", s, ABS[s]) for s in SEEDS if s != drop_abs_seed]
    return pd.DataFrame(rows)


def paired_expectation(diffs: np.ndarray, alpha: float, min_effect: float) -> tuple[float, int]:
    sd = diffs.std(ddof=1)
    detectable = TTestPower().solve_power(effect_size=None, nobs=len(diffs), alpha=alpha, power=POWER) * sd
    needed = math.ceil(TTestPower().solve_power(effect_size=min_effect / sd, nobs=None, alpha=alpha, power=POWER))
    return detectable, needed


def test_paired_detectable_difference_and_seeds_needed_agree_with_statsmodels():
    row = pairwise_tests(close_frame(), min_effect=0.005).iloc[0]
    diffs = np.array([ABS[s] - RELU[s] for s in SEEDS])
    detectable, needed = paired_expectation(diffs, 0.05, 0.005)
    assert row["test"] == "paired" and not row["significant"]
    assert row["detectable_diff"] == pytest.approx(detectable, rel=1e-6)
    assert row["replicates_needed"] == needed and needed > 5  # five seeds were too few to see 0.005
    assert row["min_effect"] == 0.005
    assert (
        f"This sweep could detect differences of {detectable:.4f} or more (80% power); "
        f"about {needed} seeds per group would detect 0.005."
    ) in row["verdict"]
    # A stricter alpha needs a larger difference to be seen.
    strict = pairwise_tests(close_frame(), alpha=0.01).iloc[0]
    assert strict["detectable_diff"] == pytest.approx(paired_expectation(diffs, 0.01, 0.005)[0], rel=1e-6)
    assert strict["detectable_diff"] > row["detectable_diff"]
    assert "seeds per group would detect" not in strict["verdict"]  # no min_effect: only what it could see


def test_unpaired_comparison_uses_the_two_sample_power():
    row = pairwise_tests(close_frame(drop_abs_seed=4), min_effect=0.005).iloc[0]
    a = np.array([ABS[s] for s in SEEDS[:4]])
    b = np.array([RELU[s] for s in SEEDS])
    pooled = math.sqrt((3 * a.var(ddof=1) + 4 * b.var(ddof=1)) / 7)
    effect = TTestIndPower().solve_power(effect_size=None, nobs1=4, ratio=5 / 4, alpha=0.05, power=POWER)
    needed = math.ceil(
        TTestIndPower().solve_power(effect_size=0.005 / pooled, nobs1=None, ratio=1, alpha=0.05, power=POWER)
    )
    # group_a is the abs group (sorted labels): nobs1 is its 4 runs.
    assert row["group_a"] == "model.activation=abs" and row["test"] == "welch"
    assert row["detectable_diff"] == pytest.approx(effect * pooled, rel=1e-6)
    assert row["replicates_needed"] == needed


def test_simple_effects_and_interaction_carry_detectable_differences():
    # Two models x two activations, about the same small gap in both models: nothing is significant.
    rows = []
    for model, shift in (("class_mlp", 0.0), ("lambda_mlp", -0.01)):
        for act, values in (("abs", ABS), ("relu", RELU)):
            for s in SEEDS:
                extra = EXTRA[s] if model == "lambda_mlp" and act == "abs" else 0.0
                r = run_row(act, s, values[s] + shift + extra, extra_overrides=[f"model={model}"])
                r["run_id"] = f"{model}-{act}-{s}"
                rows.append(r)
    df = pd.DataFrame(rows)
    tests = factor_tests(df, compare_by=["model.activation"], min_effect=0.005).set_index("within")
    inter = interaction_tests(df, min_effect=0.005).iloc[0]
    diffs = np.array([ABS[s] - RELU[s] for s in SEEDS])
    detectable, needed = paired_expectation(diffs, 0.05, 0.005)
    assert tests.loc["model=class_mlp", "detectable_diff"] == pytest.approx(detectable, rel=1e-6)
    dd = -np.array([EXTRA[s] for s in SEEDS])
    dd_detectable, dd_needed = paired_expectation(dd, 0.05, 0.005)
    assert inter["test"] == "paired" and not inter["significant"]
    assert inter["detectable_diff"] == pytest.approx(dd_detectable, rel=1e-6)
    assert inter["replicates_needed"] == dd_needed
    assert f"about {dd_needed} seeds per cell would detect 0.005" in inter["verdict"]


def test_equivalence_by_tost_with_holm_per_family():
    # Margin 0.02 holds the small gap; margin 0.002 does not.
    a = np.array([ABS[s] for s in SEEDS])
    b = np.array([RELU[s] for s in SEEDS])
    wide = pairwise_tests(close_frame(), margin=0.02).iloc[0]
    assert wide["tost_p"] == pytest.approx(ttost_paired(a, b, -0.02, 0.02)[0], rel=1e-9)
    assert wide["equivalence"] == "equivalent" and "Equivalent within ±0.02 (TOST p=" in wide["verdict"]
    narrow = pairwise_tests(close_frame(), margin=0.002).iloc[0]
    assert narrow["equivalence"] == "not shown equivalent"
    assert "Not shown equivalent within ±0.002" in narrow["verdict"]
    unpaired = pairwise_tests(close_frame(drop_abs_seed=4), margin=0.02).iloc[0]
    assert unpaired["tost_p"] == pytest.approx(ttost_ind(a[:4], b, -0.02, 0.02, usevar="unequal")[0], rel=1e-9)
    # Three groups: Holm over the three TOST p-values of the family.
    df = pd.concat([close_frame(), pd.DataFrame([run_row("tanh", s, RELU[s] + 0.001 * s) for s in SEEDS])])
    three = pairwise_tests(df, margin=0.02)
    assert list(three["tost_p_holm"]) == pytest.approx(holm(list(three["tost_p"])))
    assert (three["equivalence_margin"] == 0.02).all()
    # Without a margin there is no TOST and no equivalence clause.
    plain = pairwise_tests(close_frame()).iloc[0]
    assert math.isnan(plain["tost_p"]) and plain["equivalence"] == "" and "quivalent" not in plain["verdict"]


@pytest.mark.parametrize("override", ["sweep.min_effect=-0.01", "sweep.equivalence_margin=0"])
def test_sweep_keys_reject_non_positive_values(override):
    with pytest.raises(ConfigError) as info:
        validate(compose(override))
    assert info.value.path == override.split("=")[0] and "positive" in str(info.value)
    assert validate(compose("sweep.min_effect=0.005", "sweep.equivalence_margin=0.01")).sweep.min_effect == 0.005


@pytest.fixture(scope="module")
def close_store(tmp_path_factory):
    """A SQLite store with one sweep of 2 activations x 5 seeds whose gap is small and noisy."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("close", artifact_location=(root / "artifacts").as_uri())
    parent = client.create_run(exp_id, tags={"layerlab.role": "parent", "layerlab.sweep_id": "s1"})
    for act, values in (("abs", ABS), ("relu", RELU)):
        for s in SEEDS:
            run = client.create_run(
                exp_id,
                run_name=f"{act}-{s}",
                tags={
                    "layerlab.role": "job",
                    "layerlab.sweep_id": "s1",
                    "mlflow.parentRunId": parent.info.run_id,
                    "layerlab.overrides": json.dumps([f"model.activation={act}", f"seed={s}"]),
                },
            )
            client.log_param(run.info.run_id, "seed", s)
            client.log_param(run.info.run_id, "model.activation", act)
            for key, v in (
                ("val_sparse_categorical_accuracy", values[s]),
                ("val_loss", 1 - values[s]),
                ("epoch_time_s", 0.5),
            ):
                client.log_metric(run.info.run_id, key, v, step=0)
            client.log_metric(run.info.run_id, "test_sparse_categorical_accuracy", values[s])
            client.log_metric(run.info.run_id, "test_loss", 1 - values[s])
            client.set_terminated(run.info.run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, "FINISHED")
    return uri


def test_compare_command_shows_detectable_seeds_needed_and_equivalence(close_store, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cmp.main(
        [
            "close",
            "--sweep-id",
            "s1",
            "--tracking-uri",
            close_store,
            "--out",
            str(out),
            "--min-effect",
            "0.005",
            "--equivalence-margin",
            "0.02",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    diffs = np.array([ABS[s] - RELU[s] for s in SEEDS])
    detectable, needed = paired_expectation(diffs, 0.05, 0.005)
    assert "detectable (80% power)" in printed and "n for min effect" in printed and "equivalent (TOST)" in printed
    assert f"{detectable:.4f}" in printed and f"{needed} for 0.005" in printed
    assert f"about {needed} seeds per group would detect 0.005" in printed
    csv = pd.read_csv(out / "comparison_tests.csv").iloc[0]
    assert csv["detectable_diff"] == pytest.approx(detectable, rel=1e-6) and csv["replicates_needed"] == needed
    assert csv["equivalence"] == "equivalent"
    md = (out / "comparison.md").read_text()
    assert "detectable (80% power)" in md and "equivalent (TOST)" in md
    result = cmp.compare_sweep(close_store, "close", sweep_id="s1", out_dir=tmp_path / "api", min_effect=0.005)
    assert "detectable (80% power)" in result["description"] and f"{needed} for 0.005" in result["description"]


def test_compare_command_rejects_a_non_positive_min_effect(close_store, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cmp.main(["close", "--tracking-uri", close_store, "--out", str(tmp_path), "--min-effect", "0"])
    assert info.value.code == 2 and "must be a positive number" in capsys.readouterr().err
