"""Comparisons along each factor (simple effects), their interaction, and what the sweep shows in MLflow.

Hand-built frames with the columns of ``mlflow.search_runs`` (see tests/test_compare.py); every
number is checked against scipy computed here on the same values.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.analysis.factors import factor_tests, interaction_tests
from experiments.analysis.stats import pairwise_tests
from experiments.analysis.summarize import summarize
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError
from experiments.job.naming import child_run_name, name_from
from experiments.sweeps.champion import best_row
from experiments.sweeps.state import SweepState
from experiments.sweeps.ui import group_metrics, metric_label
from tests.test_compare import run_row

SEEDS = [0, 1, 2, 3, 4]
# test accuracy per (model, activation): abs ahead in both models, by more in lambda_mlp.
BASE = {
    ("class_mlp", "abs"): 0.930,
    ("class_mlp", "relu"): 0.920,
    ("lambda_mlp", "abs"): 0.925,
    ("lambda_mlp", "relu"): 0.905,
}
NOISE = [0.004, -0.002, 0.001, -0.003, 0.0005]
JITTER = {"abs": [0.001, -0.001, 0.002, 0.0, -0.002], "relu": [-0.001, 0.002, 0.0, 0.001, -0.001]}


def value(model: str, act: str, seed: int) -> float:
    return BASE[(model, act)] + NOISE[seed] + JITTER[act][seed] * (2 if model == "lambda_mlp" else 1)


def frame(seed_key: str = "seed") -> pd.DataFrame:
    rows = []
    for model in ("lambda_mlp", "class_mlp"):
        for act in ("abs", "relu"):
            for s in SEEDS:
                row = run_row(act, s, value(model, act, s), extra_overrides=[f"model={model}"])
                row["run_id"] = f"{model}-{act}-{s}"
                if seed_key != "seed":  # the replicate is another key: rename it in overrides and params
                    row["tags.layerlab.overrides"] = json.dumps(
                        [f"model={model}", f"model.activation={act}", f"{seed_key}={s}"]
                    )
                    row[f"params.{seed_key}"] = row.pop("params.seed")
                rows.append(row)
    return pd.DataFrame(rows)


def cells(model: str, act: str) -> np.ndarray:
    return np.array([value(model, act, s) for s in SEEDS])


def test_simple_effects_within_each_model_with_holm_per_factor():
    tests = factor_tests(frame())
    act = tests[tests["factor"] == "model.activation"].set_index("within")
    assert set(act.index) == {"model=class_mlp", "model=lambda_mlp"}
    assert set(tests["factor"]) == {"model", "model.activation"} and len(tests) == 4
    raw = {}
    for model in ("class_mlp", "lambda_mlp"):
        row = act.loc[f"model={model}"]
        a, b = cells(model, "abs"), cells(model, "relu")
        rel = stats.ttest_rel(a, b)
        ci = rel.confidence_interval(0.95)
        assert (row["level_a"], row["level_b"]) == ("abs", "relu")
        assert row["test"] == "paired" and row["n_pairs"] == 5
        assert row["diff"] == pytest.approx((a - b).mean())
        assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx((ci.low, ci.high))
        assert row["paired_p"] == pytest.approx(rel.pvalue)
        d = a - b
        assert row["effect_kind"] == "d_z" and row["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
        assert row["verdict"].startswith(f"Within model={model}: ")
        assert "Cohen's d_z=" in row["verdict"]
        raw[model] = rel.pvalue
    # Holm over the activation family only (2 comparisons), not over all 4 rows.
    lo, hi = sorted(raw, key=raw.get)
    assert act.loc[f"model={lo}", "p_holm"] == pytest.approx(min(1, 2 * raw[lo]))
    assert act.loc[f"model={hi}", "p_holm"] == pytest.approx(max(min(1, 2 * raw[lo]), raw[hi]))
    assert "over 2 comparisons" in act.loc["model=class_mlp", "verdict"]


def test_interaction_is_the_difference_of_differences():
    inter = interaction_tests(frame())
    assert len(inter) == 1
    row = inter.iloc[0]
    assert (row["factor"], row["by"]) == ("model.activation", "model")  # the last swept key is the contrast
    assert (row["level_a"], row["level_b"], row["by_a"], row["by_b"]) == ("abs", "relu", "class_mlp", "lambda_mlp")
    dd = (cells("class_mlp", "abs") - cells("class_mlp", "relu")) - (
        cells("lambda_mlp", "abs") - cells("lambda_mlp", "relu")
    )
    one = stats.ttest_1samp(dd, 0.0)
    ci = one.confidence_interval(0.95)
    assert row["dd"] == pytest.approx(dd.mean())
    assert row["p"] == pytest.approx(one.pvalue) and row["test"] == "paired" and row["n_pairs"] == 5
    assert (row["dd_ci_low"], row["dd_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert "the abs-minus-relu difference in test accuracy" in row["verdict"]
    assert "at model=class_mlp" in row["verdict"] and "at model=lambda_mlp" in row["verdict"]


def test_unpaired_interaction_uses_welch_satterthwaite():
    df = frame()
    # Drop one seed from one cell: the replicates no longer match, so nothing is paired.
    df = df[~(df["run_id"] == "class_mlp-abs-4")]
    row = interaction_tests(df).iloc[0]
    groups = [
        cells("class_mlp", "abs")[:4],
        cells("class_mlp", "relu"),
        cells("lambda_mlp", "abs"),
        cells("lambda_mlp", "relu"),
    ]
    terms = [g.var(ddof=1) / len(g) for g in groups]
    se = np.sqrt(sum(terms))
    dof = se**4 / sum(t**2 / (len(g) - 1) for t, g in zip(terms, groups))
    est = groups[0].mean() - groups[1].mean() - groups[2].mean() + groups[3].mean()
    assert row["test"] == "welch" and row["dd"] == pytest.approx(est)
    assert row["p"] == pytest.approx(2 * stats.t.sf(abs(est) / se, dof))
    # ...and the simple effect in class_mlp falls back to Welch with Hedges' g.
    act = factor_tests(df, compare_by=["model.activation"]).set_index("within")
    cm = act.loc["model=class_mlp"]
    a, b = groups[0], groups[1]
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    g = (a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (len(a) + len(b)) - 9))
    assert cm["test"] == "welch" and cm["effect_kind"] == "g" and cm["effect_size"] == pytest.approx(g)
    assert "Hedges' g=" in cm["verdict"]


def test_compare_by_restricts_and_rejects_unknown_keys():
    tests = factor_tests(frame(), compare_by=["model.activation"])
    assert set(tests["factor"]) == {"model.activation"} and len(tests) == 2
    with pytest.raises(LayerlabError) as exc:
        factor_tests(frame(), compare_by=["optimizer.learning_rate"])
    text = str(exc.value)
    assert "sweep.compare_by" in text and "not swept" in text and "model.activation" in text
    assert "\n" not in text  # one paragraph


def test_another_replicate_key_pairs_by_it_and_is_not_a_factor():
    tests = factor_tests(frame("trial"), replicate_key="trial")
    assert set(tests["factor"]) == {"model", "model.activation"}
    assert (tests["test"] == "paired").all() and (tests["n_pairs"] == 5).all()
    # With the default key, "trial" is a factor, and nothing pairs.
    assert "trial" in set(factor_tests(frame("trial"))["factor"])


def test_one_factor_gives_the_same_verdict_as_the_pairwise_test():
    df = pd.DataFrame([run_row(a, s, value("class_mlp", a, s)) for a in ("abs", "relu") for s in SEEDS])
    single, pair = factor_tests(df).iloc[0], pairwise_tests(df).iloc[0]
    assert single["within"] == "" and single["verdict"] == pair["verdict"]
    assert interaction_tests(df).empty


def test_child_names_say_what_differs():
    assert (
        child_run_name(
            ["model=lambda_mlp", "model.activation=abs", "seed=3", "training.epochs=1"],
            ["model=lambda_mlp,class_mlp", "model.activation=abs,relu", "seed=0,1,2,3", "training.epochs=1"],
        )
        == "activation=abs model=lambda_mlp seed=3"
    )
    assert name_from({"seed": "1", "a.lr": "0.1", "b.lr": "0.2"}) == "a.lr=0.1 b.lr=0.2 seed=1"
    # A launcher may retype the values it hands to the job (Ray: False for false, escaped colons): keys decide.
    assert (
        child_run_name(
            [
                "model.activation=abs",
                "seed=1",
                "tracking.log_model=False",
                "tracking.uri=sqlite\\:////tmp/m.db",
                "+notes.x=1",
            ],
            [
                "model.activation=abs,relu",
                "seed=0,1",
                "tracking.log_model=false",
                "tracking.uri=sqlite:////tmp/m.db",
                "+notes.x=1",
            ],
        )
        == "activation=abs seed=1"
    )


def test_group_metrics_have_readable_names_and_best_run_uses_validation():
    df = frame()
    summary = summarize(df, 0.9)
    metrics = group_metrics(summary)
    key = "test_acc_mean/activation:abs model:class_mlp"
    assert metrics[key] == pytest.approx(cells("class_mlp", "abs").mean())
    assert "test_acc_ci95/activation:relu model:lambda_mlp" in metrics
    assert "val_acc_mean/activation:abs model:lambda_mlp" in metrics
    assert metric_label("lr=0.1, a/b") == "lr_0.1_ a_b"

    def run(name, val, test, status="FINISHED"):
        return {"run_id": name, "status": status, "val": val, "test": test}

    state = SweepState(
        uri="",
        experiment="",
        experiment_id="",
        parent_run_id="p",
        sweep_id="s",
        sweep_dir=".",
        metric=MetricSpec(name="accuracy", mode="max"),
    )
    runs = [run("best-by-test", 0.80, 0.99), run("best-by-val", 0.90, 0.85), run("failed", 0.99, 0.99, "FAILED")]
    assert best_row(state, runs)["run_id"] == "best-by-val"
    loss = SweepState(
        uri="",
        experiment="",
        experiment_id="",
        parent_run_id="p",
        sweep_id="s",
        sweep_dir=".",
        metric=MetricSpec(name="accuracy", mode="min"),
    )
    assert best_row(loss, runs)["run_id"] == "best-by-test"
