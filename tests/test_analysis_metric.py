"""The compared metric is a parameter: runs judged by ``accuracy`` (or ``loss``), named by their tags.

End to end on a real MLflow SQLite store under pytest's temporary folder:
runs that log ``accuracy``/``val_accuracy``/``test_accuracy`` (Keras 3's name
for ``metrics=["accuracy"]``) and carry ``layerlab.metric=accuracy``, and no
``sparse_categorical_accuracy`` at all.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from experiments.analysis import compare as cmp
from experiments.analysis.metric import FALLBACK_METRIC, base_name, metric_spec, pretty_metric, resolve_metric
from experiments.analysis.runs import load_runs
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError
from experiments.tracking import tags

EXPERIMENT = "metric-e2e"
ABS, RELU = "model.activation=abs", "model.activation=relu"
# Final test accuracy per seed; the per-seed differences are 0.10, 0.13, 0.13 (see test_analysis_stats).
ABS_ACC = {0: 0.80, 1: 0.84, 2: 0.88}
RELU_ACC = {0: 0.70, 1: 0.71, 2: 0.75}
# val_accuracy per epoch: abs reaches 0.8 at epoch 2, relu at epoch 3 for seed 0 and never for the others.
ABS_CURVE = [0.60, 0.81, 0.85]
RELU_CURVE = {0: [0.50, 0.70, 0.80], 1: [0.50, 0.70, 0.75], 2: [0.50, 0.70, 0.79]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Sweep "acc": 2 groups x 3 seeds tagged accuracy/max; sweep "untagged": the same runs without the tags."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-metric")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())  # not ./mlruns

    def log_job(sweep, act, seed, test_acc, curve, metric_tags):
        run = client.create_run(exp_id, run_name=f"{act}-{seed}")
        rid = run.info.run_id
        run_tags = {
            tags.ROLE: tags.ROLE_JOB,
            tags.SWEEP_ID: sweep,
            tags.OVERRIDES: json.dumps([f"model.activation={act}", f"seed={seed}"]),
            **metric_tags,
        }
        for key, value in run_tags.items():
            client.set_tag(rid, key, value)
        client.log_param(rid, "seed", seed)
        client.log_param(rid, "model.activation", act)
        for epoch, acc in enumerate(curve):
            for key, value in {
                "accuracy": acc + 0.01,
                "val_accuracy": acc,
                "loss": 1.1 - acc,
                "val_loss": 1 - acc,
                "epoch_time_s": 0.25,
            }.items():
                client.log_metric(rid, key, value, step=epoch)
        client.log_metric(rid, "test_accuracy", test_acc)
        client.log_metric(rid, "test_loss", 1 - test_acc)
        client.set_terminated(rid, "FINISHED")

    for sweep, metric_tags in (("acc", {tags.METRIC: "accuracy", tags.METRIC_MODE: "max"}), ("untagged", {})):
        for seed in range(3):
            log_job(sweep, "abs", seed, ABS_ACC[seed], ABS_CURVE, metric_tags)
            log_job(sweep, "relu", seed, RELU_ACC[seed], RELU_CURVE[seed], metric_tags)
    return uri


def test_metric_names_and_directions():
    assert base_name("test_loss") == "loss" and base_name("val_accuracy") == "accuracy"
    assert base_name("acc") == "accuracy"  # Keras 3's log name
    assert metric_spec("test_loss") == MetricSpec("loss", "min")
    assert metric_spec("accuracy") == MetricSpec("accuracy", "max")
    assert metric_spec("accuracy", "min").mode == "min"
    with pytest.raises(LayerlabError, match="must be 'max'"):
        metric_spec("accuracy", "up")
    assert pretty_metric("test_accuracy") == "test accuracy"
    assert pretty_metric("val_sparse_categorical_accuracy") == "val accuracy"
    assert pretty_metric("loss") == "train loss"


def test_resolve_metric_from_tags():
    col, mode_col = f"tags.{tags.METRIC}", f"tags.{tags.METRIC_MODE}"
    tagged = pd.DataFrame({col: ["accuracy", "accuracy", None], mode_col: ["max", None, None]})
    assert resolve_metric(tagged) == MetricSpec("accuracy", "max")
    assert resolve_metric(tagged, "test_loss") == MetricSpec("loss", "min")  # an explicit metric wins
    assert resolve_metric(pd.DataFrame({col: ["loss"], mode_col: ["max"]})) == MetricSpec("loss", "max")  # tag's mode
    assert resolve_metric(pd.DataFrame({"run_id": ["r"]})) == MetricSpec(FALLBACK_METRIC, "max")  # older stores
    with pytest.raises(LayerlabError, match="different metrics"):
        resolve_metric(pd.DataFrame({col: ["accuracy", "loss"]}))


def test_load_runs_fetches_the_tagged_metric_history(store):
    df = load_runs(store, EXPERIMENT, "acc")
    assert len(df) == 6
    row = df[df["tags.mlflow.runName"] == "relu-1"].iloc[0]
    assert set(row["history"]) == {"val_accuracy", "val_loss", "accuracy", "loss", "epoch_time_s"}
    assert row["history"]["val_accuracy"] == pytest.approx(RELU_CURVE[1])


def test_compare_sweep_uses_the_tagged_metric(store, tmp_path):
    result = cmp.compare_sweep(store, EXPERIMENT, sweep_id="acc", out_dir=tmp_path, target=0.8)
    assert result["metric"] == MetricSpec("accuracy", "max")

    summary = result["summary"].set_index("group")
    assert list(summary.index) == [ABS, RELU]
    assert (summary["metric"] == "accuracy").all() and (summary["mode"] == "max").all()
    # abs: mean 0.84, sd 0.04, 95% CI half width 4.302653 * 0.04 / sqrt(3); relu: mean 0.72.
    assert summary.loc[ABS, "test_acc_mean"] == pytest.approx(0.84)
    assert summary.loc[ABS, "test_acc_std"] == pytest.approx(0.04)
    assert summary.loc[ABS, "test_acc_ci95"] == pytest.approx(0.099366, abs=1e-6)
    assert summary.loc[RELU, "test_acc_mean"] == pytest.approx(0.72)
    assert summary.loc[ABS, "test_loss_mean"] == pytest.approx(0.16)
    assert summary.loc[ABS, "val_acc_mean"] == pytest.approx(0.85)  # final val_accuracy
    # Epochs to val_accuracy >= 0.8: abs at epoch 2 (3 of 3), relu at epoch 3 for seed 0 only.
    assert summary.loc[ABS, "epochs_to_target_mean"] == pytest.approx(2.0)
    assert (
        summary.loc[RELU, "epochs_to_target_mean"],
        summary.loc[RELU, "n_reached_target"],
        summary.loc[RELU, "n_missed_target"],
    ) == (pytest.approx(3.0), 1, 2)
    assert summary.loc[ABS, "epoch_time_s_mean"] == pytest.approx(0.25)

    row = result["tests"].iloc[0]
    assert row["metric"] == "test_accuracy"
    assert (row["test"], row["n_pairs"], row["better"]) == ("paired", 3, ABS)
    assert row["diff"] == pytest.approx(0.12)
    assert row["paired_p"] == pytest.approx(0.006873, abs=1e-6)  # t = 12 on 2 degrees of freedom
    assert [row["diff_ci_low"], row["diff_ci_high"]] == pytest.approx([0.076973, 0.163027], abs=1e-6)
    assert result["verdicts"][0].startswith(f"{ABS} is better than {RELU} on test accuracy by 0.1200 (higher")

    assert [p.name for p in result["plots"]] == ["curves_val_accuracy.png", "curves_val_loss.png"]
    md = result["markdown"].read_text()
    assert "Compared metric: `test_accuracy` (higher is better)" in md
    assert "epochs to val accuracy 0.8" in md
    assert "test acc" in result["table"] and "epochs to 0.8" in result["table"]


def test_compare_sweep_loss_metric_from_the_caller(store, tmp_path):
    result = cmp.compare_sweep(store, EXPERIMENT, sweep_id="acc", out_dir=tmp_path, metric="loss", target=0.2)
    summary = result["summary"].set_index("group")
    assert [c for c in summary.columns if c.endswith("_mean")] == [
        "val_loss_mean",
        "test_loss_mean",
        "epochs_to_target_mean",
        "epoch_time_s_mean",
    ]
    assert summary.loc[ABS, "test_loss_mean"] == pytest.approx(0.16)
    # val_loss <= 0.2 (lower is better): abs reaches it at epoch 2 (1 - 0.81), relu only for seed 0 at epoch 3.
    assert summary.loc[ABS, "epochs_to_target_mean"] == pytest.approx(2.0)
    assert summary.loc[RELU, "n_reached_target"] == 1
    row = result["tests"].iloc[0]
    assert row["metric"] == "test_loss" and row["better"] == ABS
    assert result["verdicts"][0].startswith(f"{ABS} is better than {RELU} on test loss by 0.1200 (lower")
    assert [p.name for p in result["plots"]] == ["curves_val_loss.png"]


def test_untagged_runs_fall_back_and_say_so(store, tmp_path):
    # No layerlab.metric tag and no sparse_categorical_accuracy logged: nothing to compare on, stated plainly.
    result = cmp.compare_sweep(store, EXPERIMENT, sweep_id="untagged", out_dir=tmp_path)
    assert result["metric"] == MetricSpec(FALLBACK_METRIC, "max")
    assert result["summary"]["test_acc_mean"].isna().all()
    assert "test not possible" in result["verdicts"][0]


@pytest.mark.parametrize("metric", ["accuracy", "test_accuracy", "acc"])
def test_cli_metric_base_or_test_name(store, tmp_path, capsys, metric):
    code = cmp.main(
        [
            EXPERIMENT,
            "--sweep-id",
            "untagged",
            "--tracking-uri",
            store,
            "--out",
            str(tmp_path),
            "--metric",
            metric,
            "--target",
            "0.8",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Compared: test accuracy (higher is better)" in out
    assert f"{ABS} is better than {RELU} on test accuracy" in out


def test_cli_mode_overrides_the_direction(store, tmp_path, capsys):
    code = cmp.main([EXPERIMENT, "--sweep-id", "acc", "--tracking-uri", store, "--out", str(tmp_path), "--mode", "min"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{RELU} is better than {ABS} on test accuracy by 0.1200 (lower" in out
