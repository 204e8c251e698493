"""Replicates in rounds (hydra/sweeper=rounds, sweep.until.*): the analysis side, then a real multirun."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from experiments.analysis.rounds import next_replicates, paired_differences, rounds_markdown
from experiments.analysis.sequential import StoppingRule, decide
from experiments.errors import ConfigError
from hydra_plugins.layerlab_rounds._rounds import rule as _rule
from tests.conftest import TINY, run_cli
from tests.test_analysis_factors import SEEDS, cells, frame


def test_paired_differences_follow_the_factor_table():
    pairs = dict(paired_differences(frame(), compare_by=["model.activation"]))
    assert set(pairs) == {
        "model.activation: abs − relu (within model=class_mlp)",
        "model.activation: abs − relu (within model=lambda_mlp)",
    }
    assert pairs["model.activation: abs − relu (within model=class_mlp)"] == pytest.approx(
        cells("class_mlp", "abs") - cells("class_mlp", "relu")
    )
    # A missing replicate: that comparison no longer pairs.
    df = frame()
    df = df[df["run_id"] != "class_mlp-abs-4"]
    assert (
        dict(paired_differences(df, compare_by=["model.activation"]))[
            "model.activation: abs − relu (within model=class_mlp)"
        ]
        is None
    )


def test_new_seeds_are_never_reused_and_the_record_says_how_many_rounds():
    assert next_replicates([0, 1, 2, 7], 3) == [8, 9, 10]
    rule = StoppingRule(first=len(SEEDS), step=5, max_replicates=20, ci_half_width=0.05)
    diffs = cells("class_mlp", "abs") - cells("class_mlp", "relu")
    decision = decide(rule, [diffs])
    assert decision.stop and decision.look == 1
    text = rounds_markdown(rule, decision, ["abs − relu"], "test_sparse_categorical_accuracy")
    assert (
        "Stopped after round 1 of at most 4 (5 replicates per group): every difference known to within ±0.05"
    ) in text
    # The first of four looks spends almost no alpha: its interval is wide and decides nothing yet.
    assert "| abs − relu | +0.0098 |" in text and "undecided" in text


def test_rounds_need_a_cap():
    config = None  # sweep.equivalence_margin
    with pytest.raises(ConfigError) as info:
        _rule({"ci_half_width": 0.01, "max_replicates": None}, [0, 1, 2], config)
    assert info.value.path == "sweep.until.max_replicates" and "max_replicates=6" in str(info.value)
    assert _rule({"verdict": True, "max_replicates": 9}, [0, 1, 2], config).looks() == (3, 6, 9)


@pytest.mark.slow
def test_a_sweep_adds_new_seeds_in_rounds_up_to_the_cap(tmp_path, store):
    """A real multirun: new seeds in rounds up to the cap; sweep.min_effect / equivalence_margin reach the report."""
    # A half width no 3 seeds can reach: the rounds go on to the cap (2, then 3 seeds per group).
    proc = run_cli(
        "-m",
        "hydra/sweeper=rounds",
        "model.activation=abs,relu",
        "seed=0,1",
        *TINY,
        "tracking.log_model=false",
        "training.checkpoint.enabled=false",
        f"tracking.uri={store}",
        "tracking.experiment=rounds",
        "sweep.until.ci_half_width=0.000001",
        "sweep.until.max_replicates=3",
        "sweep.until.step=1",
        "sweep.min_effect=0.01",
        "sweep.equivalence_margin=0.05",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "layerlab: round 1 (2 seeds per group): not decided yet" in proc.stdout
    assert "layerlab: round 2 (3 seeds per group): the cap of 3 replicates was reached" in proc.stdout
    client = mlflow.MlflowClient(store)
    exp = client.get_experiment_by_name("rounds")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("layerlab.role") == "parent")
    children = [r for r in runs if r.data.tags.get("layerlab.role") == "job"]
    combos = sorted((c.data.params["model.activation"], c.data.params["seed"]) for c in children)
    assert combos == sorted((a, str(s)) for a in ("abs", "relu") for s in range(3))  # each seed once per group
    assert sorted(int(c.data.tags["layerlab.job_num"]) for c in children) == list(range(6))
    assert parent.data.tags["layerlab.rounds"] == "2" and parent.info.status == "FINISHED"
    assert "rounds.md" in {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert parent.data.metrics["jobs_finished"] == 6
    # The final comparison covers every round, and says what it could see (sweep.min_effect, equivalence_margin).
    assert "detectable (80% power)" in proc.stdout and "n for min effect" in proc.stdout
    note = parent.data.tags["mlflow.note.content"]
    assert "detectable (80% power)" in note and "equivalent (TOST)" in note and "for 0.01" in note
    # The final verdict says how many rounds of seeds it rests on: on the terminal and in the description.
    final = proc.stdout[proc.stdout.rindex("layerlab: sweep ") :]
    assert "rounds (hydra/sweeper=rounds): Stopped after round 2 of at most 2 (3 replicates per group)" in final
    assert "**Rounds** (`hydra/sweeper=rounds`): Stopped after round 2 of at most 2 (3 replicates per group)" in note
    csv = pd.read_csv(client.download_artifacts(parent.info.run_id, "comparison/comparison_tests.csv", str(tmp_path)))
    assert (csv["n_pairs"] == 3).all() and (csv["min_effect"] == 0.01).all()
    assert (csv["equivalence_margin"] == 0.05).all() and set(csv["equivalence"]) <= {
        "equivalent",
        "not shown equivalent",
    }
