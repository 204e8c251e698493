"""Tests for the sweep comparison (experiments.analysis): statistics on fixed numbers, then MLflow end to end.

The pure functions get hand-built frames with the column names of
``mlflow.search_runs`` (``params.*``, ``metrics.*``, ``tags.*``) plus the
``history`` column of ``load_runs``.  The end-to-end tests log real runs into
an MLflow SQLite store under pytest's temporary folder (no mocks).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.analysis import compare as cmp
from experiments.analysis.curves import plot_curves
from experiments.analysis.groups import group_columns, group_labels
from experiments.analysis.report import rerun_command, write_report
from experiments.analysis.runs import history_keys, load_runs
from experiments.analysis.stats import mean_ci, pairwise_tests
from experiments.analysis.summarize import summarize
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError

ABS = "model.activation=abs"
RELU = "model.activation=relu"


def run_row(
    activation: str | None,
    seed: int,
    test_acc: float,
    *,
    status: str = "FINISHED",
    test_loss: float | None = None,
    val_acc_curve: list[float] | None = None,
    epoch_times: list[float] | None = None,
    extra_overrides: list[str] | None = None,
    param_activation: str | None = None,
) -> dict:
    """One run as a row of the frame that load_runs returns.

    Args:
        activation: value of the ``model.activation`` override (None: not overridden).
        seed: the seed override and param.
        test_acc: final test accuracy.
        status: MLflow run status.
        test_loss: final test loss (default 1 - test_acc).
        val_acc_curve: per-epoch val accuracy (default a 3-epoch curve ending at test_acc).
        epoch_times: per-epoch seconds (default 1.0 each).
        extra_overrides: overrides added to every run.
        param_activation: resolved ``params.model.activation`` (default = activation).
    """
    overrides = list(extra_overrides or [])
    if activation is not None:
        overrides.append(f"model.activation={activation}")
    overrides.append(f"seed={seed}")
    curve = val_acc_curve if val_acc_curve is not None else [test_acc - 0.2, test_acc - 0.05, test_acc]
    times = epoch_times if epoch_times is not None else [1.0] * len(curve)
    loss = 1.0 - test_acc if test_loss is None else test_loss
    return {
        "run_id": f"{activation}-{seed}-{status}",
        "status": status,
        "tags.mlflow.runName": f"job-{activation}-{seed}",
        "tags.layerlab.role": "job",
        "tags.layerlab.overrides": json.dumps(overrides),
        "params.seed": str(seed),
        "params.model.activation": param_activation or activation or "relu",
        "metrics.val_sparse_categorical_accuracy": curve[-1],
        "metrics.val_loss": 1.0 - curve[-1],
        "metrics.test_sparse_categorical_accuracy": test_acc,
        "metrics.test_loss": loss,
        "metrics.epoch_time_s": times[-1],
        "history": {
            "val_sparse_categorical_accuracy": list(curve),
            "val_loss": [1.0 - v for v in curve],
            "epoch_time_s": list(times),
        },
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    """A runs frame from row dicts.

    Args:
        rows: outputs of :func:`run_row`.
    """
    return pd.DataFrame(rows)


# Clearly separated groups; the per-seed differences are not constant (so the
# paired test has variance) and rows are shuffled (so pairing must use seeds).
RELU_ACC = {0: 0.900, 1: 0.915, 2: 0.920, 3: 0.935}
ABS_ACC = {0: 0.950, 1: 0.962, 2: 0.975, 3: 0.981}


def separated_frame() -> pd.DataFrame:
    """Two groups x 4 seeds (abs clearly better) plus one FAILED abs run."""
    rows = [run_row("relu", s, a) for s, a in RELU_ACC.items()]
    rows += [run_row("abs", s, a) for s, a in reversed(ABS_ACC.items())]
    rows.append(run_row("abs", 4, 0.10, status="FAILED"))
    return frame(rows)


# --------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------


def test_mean_ci_known_values():
    mean, std, half, n = mean_ci([0.90, 0.92, 0.94])
    assert n == 3
    assert mean == pytest.approx(0.92, abs=1e-12)
    assert std == pytest.approx(0.02, abs=1e-12)
    # t(0.975, 2) * 0.02 / sqrt(3) = 4.302653 * 0.011547
    assert half == pytest.approx(0.049683, abs=1e-6)
    assert stats.t.ppf(0.975, 2) == pytest.approx(4.302653, abs=1e-6)


def test_mean_ci_small_samples_and_nan():
    mean, std, half, n = mean_ci([0.5, float("nan")])
    assert (mean, n) == (0.5, 1)
    assert math.isnan(std) and math.isnan(half)
    assert all(math.isnan(x) for x in mean_ci([])[:3])


def test_group_columns_excludes_seed_and_constant_overrides():
    df = frame(
        [run_row(act, s, 0.9, extra_overrides=["data.name=digits"]) for act in ("abs", "relu") for s in range(2)]
    )
    assert group_columns(df) == ["model.activation"]
    assert sorted(set(group_labels(df))) == [ABS, RELU]


def test_group_columns_two_swept_keys():
    rows = []
    for lr in ("0.01", "0.001"):
        for act in ("abs", "relu"):
            rows.append(run_row(act, 0, 0.9, extra_overrides=[f"optimizer.learning_rate={lr}"]))
    assert group_columns(frame(rows)) == ["optimizer.learning_rate", "model.activation"]
    summary = summarize(frame(rows))
    # Numeric values sort numerically: 0.001 before 0.01.
    assert list(summary["group"]) == [
        "optimizer.learning_rate=0.001, model.activation=abs",
        "optimizer.learning_rate=0.001, model.activation=relu",
        "optimizer.learning_rate=0.01, model.activation=abs",
        "optimizer.learning_rate=0.01, model.activation=relu",
    ]


def test_group_columns_key_missing_in_some_overrides_uses_param():
    # Baseline jobs did not override the activation; their resolved param says relu.
    df = frame(
        [run_row(None, s, 0.9, param_activation="relu") for s in range(2)] + [run_row("abs", s, 0.95) for s in range(2)]
    )
    assert group_columns(df) == ["model.activation"]
    assert sorted(set(group_labels(df))) == [ABS, RELU]


def test_group_columns_falls_back_to_params_without_overrides():
    df = separated_frame().drop(columns=["tags.layerlab.overrides"])
    df["params.model.name"] = "mlp"  # constant: not a group column
    assert group_columns(df) == ["model.activation"]


def test_summarize_known_means_and_cis():
    rows = [run_row("relu", s, a) for s, a in enumerate([0.90, 0.92, 0.94])]
    rows += [run_row("abs", s, a) for s, a in enumerate([0.95, 0.95])]
    rows.append(run_row("relu", 9, 0.0, status="FAILED"))  # must not move the relu numbers
    summary = summarize(frame(rows)).set_index("group")

    relu = summary.loc[RELU]
    assert relu["n"] == 3
    assert relu["model.activation"] == "relu"
    assert relu["test_acc_mean"] == pytest.approx(0.92)
    assert relu["test_acc_std"] == pytest.approx(0.02)
    assert relu["test_acc_ci95"] == pytest.approx(0.049683, abs=1e-6)
    assert relu["test_loss_mean"] == pytest.approx(0.08)
    assert relu["test_loss_ci95"] == pytest.approx(0.049683, abs=1e-6)
    assert relu["val_acc_mean"] == pytest.approx(0.92)

    abs_ = summary.loc[ABS]
    assert abs_["n"] == 2
    assert abs_["test_acc_std"] == pytest.approx(0.0)
    assert abs_["test_acc_ci95"] == pytest.approx(0.0)


def test_summarize_n1_gives_nan_ci():
    summary = summarize(frame([run_row("abs", 0, 0.9), run_row("relu", 0, 0.8)]))
    assert (summary["n"] == 1).all()
    assert summary["test_acc_std"].isna().all()
    assert summary["test_acc_ci95"].isna().all()


def test_summarize_epochs_to_target_counts_misses_and_epoch_time():
    rows = [
        run_row("relu", 0, 0.91, val_acc_curve=[0.5, 0.91, 0.93], epoch_times=[2.0, 1.0, 1.0]),  # epoch 2
        run_row("relu", 1, 0.92, val_acc_curve=[0.90, 0.92, 0.95], epoch_times=[1.0, 1.0, 1.0]),  # epoch 1
        run_row("relu", 2, 0.85, val_acc_curve=[0.5, 0.8, 0.85], epoch_times=[4.0, 4.0, 4.0]),  # never
    ]
    row = summarize(frame(rows), target=0.9).iloc[0]
    assert row["group"] == "all runs"  # a single configuration
    assert row["epochs_to_target_mean"] == pytest.approx(1.5)
    assert row["n_reached_target"] == 2
    assert row["n_missed_target"] == 1
    assert row["epoch_time_s_mean"] == pytest.approx((4 / 3 + 1.0 + 4.0) / 3)


def test_summarize_without_finished_runs_raises():
    with pytest.raises(LayerlabError, match="no FINISHED runs"):
        summarize(frame([run_row("abs", 0, 0.9, status="FAILED")]))


def test_pairwise_separated_pair_is_significant_and_names_abs():
    df = separated_frame()
    tests = pairwise_tests(df)
    assert len(tests) == 1
    row = tests.iloc[0]
    relu = [RELU_ACC[s] for s in range(4)]
    abs_ = [ABS_ACC[s] for s in range(4)]

    assert {row["group_a"], row["group_b"]} == {ABS, RELU}
    sign = 1 if row["group_a"] == ABS else -1
    assert sign * row["diff"] == pytest.approx(np.mean(abs_) - np.mean(relu))
    assert row["welch_p"] == pytest.approx(stats.ttest_ind(abs_, relu, equal_var=False).pvalue, rel=1e-12)
    # Paired by seed despite the shuffled row order (the FAILED seed 4 is excluded).
    assert row["n_pairs"] == 4
    assert row["paired_p"] == pytest.approx(stats.ttest_rel(abs_, relu).pvalue, rel=1e-12)
    assert row["test"] == "paired"
    assert row["significant"]
    assert row["better"] == ABS
    d = np.array(abs_) - np.array(relu)
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert sorted([sign * row["diff_ci_low"], sign * row["diff_ci_high"]]) == pytest.approx(
        [d.mean() - half, d.mean() + half]
    )
    verdict = row["verdict"]
    assert verdict.startswith(f"{ABS} is better than {RELU} on test accuracy by {d.mean():.4f}")
    assert "significant at alpha=0.05" in verdict
    assert "paired p=" in verdict and "Welch p=" in verdict


def test_pairwise_identical_distributions_not_significant():
    a = [0.90, 0.92, 0.91, 0.93]
    b = [0.92, 0.90, 0.93, 0.91]  # same values, other seeds
    df = frame([run_row("abs", s, v) for s, v in enumerate(a)] + [run_row("relu", s, v) for s, v in enumerate(b)])
    row = pairwise_tests(df).iloc[0]
    assert row["diff"] == pytest.approx(0.0, abs=1e-12)
    assert row["welch_p"] == pytest.approx(1.0)
    assert row["paired_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert not row["significant"]
    assert row["better"] == ""
    assert row["verdict"].startswith(f"No significant difference between {ABS} and {RELU} on test accuracy")


def test_pairwise_loss_lower_is_better():
    df = frame(
        [run_row("abs", s, 0.9, test_loss=v) for s, v in enumerate([0.10, 0.11, 0.12])]
        + [run_row("relu", s, 0.9, test_loss=v) for s, v in enumerate([0.30, 0.32, 0.31])]
    )
    row = pairwise_tests(df, metric="test_loss").iloc[0]
    assert row["significant"]
    assert row["better"] == ABS
    assert row["verdict"].startswith(f"{ABS} is better than {RELU} on test loss by 0.2000 (lower")


def test_pairwise_welch_only_when_seeds_differ():
    df = frame(
        [run_row("abs", s, v) for s, v in zip([0, 1, 2], [0.95, 0.96, 0.97])]
        + [run_row("relu", s, v) for s, v in zip([5, 6, 7], [0.90, 0.91, 0.93])]
    )
    row = pairwise_tests(df).iloc[0]
    assert row["test"] == "welch"
    assert math.isnan(row["paired_p"])
    assert row["n_pairs"] == 0
    assert "paired p" not in row["verdict"]


def test_pairwise_n1_says_test_not_possible():
    df = frame([run_row("abs", 0, 0.95), run_row("relu", 0, 0.90), run_row("relu", 1, 0.91)])
    row = pairwise_tests(df).iloc[0]
    assert not row["significant"]
    assert math.isnan(row["welch_p"])
    assert "test not possible" in row["verdict"] and f"n=1 in {ABS}" in row["verdict"]


def test_pairwise_three_groups_holm_adjusted():
    vals = {"abs": [0.95, 0.96, 0.97], "relu": [0.90, 0.92, 0.91], "tanh": [0.90, 0.91, 0.93]}
    df = frame([run_row(act, s, v) for act, vs in vals.items() for s, v in enumerate(vs)])
    tests = pairwise_tests(df)
    assert len(tests) == 3
    raw = tests["paired_p"].to_numpy()
    order = np.argsort(raw)
    expected = np.empty(3)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[i]))
        expected[i] = running
    assert tests["p_holm"].to_numpy() == pytest.approx(expected)
    assert tests["verdict"].str.contains("Holm-adjusted").all()


def test_write_report_and_plots(tmp_path):
    df = separated_frame()
    summary = summarize(df)
    tests = pairwise_tests(df)
    failed = df[df["status"] != "FINISHED"]
    plots = plot_curves(df, tmp_path)
    assert [p.name for p in plots] == ["curves_val_accuracy.png", "curves_val_loss.png"]
    for p in plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    paths = write_report(summary, tests, failed, tmp_path, plots=plots)
    md = paths["markdown"].read_text()
    assert "python runner.py model.activation=abs seed=4" in md
    assert "FAILED" in md
    assert tests["verdict"].iloc[0] in md
    assert "95% confidence interval" in md
    back = pd.read_csv(paths["csv"])
    assert list(back["group"]) == [ABS, RELU]
    assert back["test_acc_mean"].to_numpy() == pytest.approx(summary["test_acc_mean"].to_numpy())


def test_rerun_command_quotes_shell_characters():
    cmd = rerun_command(json.dumps(["model.units=[64,32]", "seed=1"]))
    assert cmd == "python runner.py 'model.units=[64,32]' seed=1"


# --------------------------------------------------------------------------
# End to end: a real MLflow SQLite store
# --------------------------------------------------------------------------

SWEEP = "sweep-42"
EXPERIMENT = "compare-e2e"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite store with one sweep: 2 groups x 4 seeds + 1 FAILED, and noise runs."""
    import mlflow
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())  # not ./mlruns

    def log_job(act, seed, accs, status="FINISHED", sweep=SWEEP):
        """Log one job run as a child of the currently active parent run."""
        overrides = [f"model.activation={act}", f"seed={seed}"]
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{act}-{seed}", nested=True) as run:
            mlflow.set_tags(
                {"layerlab.role": "job", "layerlab.sweep_id": sweep, "layerlab.overrides": json.dumps(overrides)}
            )
            mlflow.log_params(
                {"seed": seed, "model.activation": act, "model.name": "mlp", "optimizer.learning_rate": 0.001}
            )
            for epoch, acc in enumerate(accs):
                mlflow.log_metrics(
                    {
                        "loss": 1 - acc + 0.01,
                        "sparse_categorical_accuracy": acc + 0.01,
                        "val_loss": 1 - acc,
                        "val_sparse_categorical_accuracy": acc,
                        "epoch_time_s": 0.5,
                    },
                    step=epoch,
                )
            if status == "FINISHED":
                mlflow.log_metrics({"test_loss": 1 - accs[-1], "test_sparse_categorical_accuracy": accs[-1]})
        if status != "FINISHED":
            client.set_terminated(run.info.run_id, status)

    with mlflow.start_run(experiment_id=exp_id, run_name="sweep") as parent:
        mlflow.set_tags({"layerlab.role": "parent", "layerlab.sweep_id": SWEEP})
        for seed in range(4):
            log_job("relu", seed, [0.70, 0.85, RELU_ACC[seed]])
            log_job("abs", seed, [0.75, 0.91, ABS_ACC[seed]])
        log_job("abs", 4, [0.2], status="FAILED")
    # Another sweep in the same experiment: must not leak into SWEEP.
    with mlflow.start_run(experiment_id=exp_id, run_name="other"):
        mlflow.set_tags({"layerlab.role": "parent", "layerlab.sweep_id": "other"})
        log_job("tanh", 0, [0.5, 0.6], sweep="other")
    mlflow.set_tracking_uri(previous)
    return {"uri": uri, "parent_id": parent.info.run_id}


def test_load_runs_reads_jobs_of_the_sweep_with_history(store):
    df = load_runs(store["uri"], EXPERIMENT, SWEEP)
    assert len(df) == 9
    assert (df["tags.layerlab.role"] == "job").all()
    assert (df["tags.mlflow.parentRunId"] == store["parent_id"]).all()
    assert sorted(df["status"].value_counts().items()) == [("FAILED", 1), ("FINISHED", 8)]
    row = df[df["tags.mlflow.runName"] == "abs-2"].iloc[0]
    assert row["history"]["val_sparse_categorical_accuracy"] == pytest.approx([0.75, 0.91, ABS_ACC[2]])
    assert set(row["history"]) == set(history_keys(MetricSpec("sparse_categorical_accuracy")))
    assert group_columns(df) == ["model.activation"]


def test_compare_sweep_end_to_end(store, tmp_path):
    out = tmp_path / "report"
    result = cmp.compare_sweep(store["uri"], EXPERIMENT, sweep_id=SWEEP, out_dir=out)

    summary = result["summary"].set_index("group")
    assert list(summary.index) == [ABS, RELU]
    assert summary.loc[ABS, "n"] == 4  # the FAILED run is excluded
    mean, std, half, _ = mean_ci(ABS_ACC.values())
    assert summary.loc[ABS, "test_acc_mean"] == pytest.approx(mean)
    assert summary.loc[ABS, "test_acc_ci95"] == pytest.approx(half)
    assert summary.loc[ABS, "epochs_to_target_mean"] == pytest.approx(2.0)  # 0.91 at epoch 2
    assert summary.loc[RELU, "epochs_to_target_mean"] == pytest.approx(3.0)
    assert summary.loc[RELU, "n_reached_target"] == 4
    assert summary.loc[ABS, "epoch_time_s_mean"] == pytest.approx(0.5)

    row = result["tests"].iloc[0]
    assert row["better"] == ABS and row["test"] == "paired"
    abs_ = [ABS_ACC[s] for s in range(4)]
    relu = [RELU_ACC[s] for s in range(4)]
    assert row["paired_p"] == pytest.approx(stats.ttest_rel(abs_, relu).pvalue, rel=1e-9)
    assert result["verdicts"][0].startswith(f"{ABS} is better than {RELU} on test accuracy")

    assert len(result["failed"]) == 1
    for key in ("markdown", "csv", "tests_csv"):
        assert result[key].exists()
    assert len(result["plots"]) == 2 and all(p.exists() for p in result["plots"])
    md = result["markdown"].read_text()
    assert "python runner.py model.activation=abs seed=4" in md
    assert "sweep-42" in md
    assert ABS in result["table"] and "95% CI" in result["table"]


def test_cli_prints_table_and_verdict(store, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cmp.main(
        [
            EXPERIMENT,
            "--sweep-id",
            SWEEP,
            "--tracking-uri",
            store["uri"],
            "--out",
            str(out),
            "--target-accuracy",
            "0.95",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{ABS} is better than {RELU}" in captured.out
    assert "epochs to 0.95" in captured.out
    assert (out / "comparison.md").exists() and (out / "comparison.csv").exists()


def test_cli_loss_metric(store, tmp_path, capsys):
    code = cmp.main(
        [
            EXPERIMENT,
            "--sweep-id",
            SWEEP,
            "--tracking-uri",
            store["uri"],
            "--out",
            str(tmp_path),
            "--metric",
            "test_loss",
        ]
    )
    assert code == 0
    assert f"{ABS} is better than {RELU} on test loss" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        ([EXPERIMENT, "--sweep-id", "nope"], "no runs found for sweep 'nope' in experiment 'compare-e2e'"),
        (["missing-exp"], "experiment 'missing-exp' not found"),
    ],
)
def test_cli_errors_exit_2_without_traceback(store, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("LAYERLAB_DEBUG", raising=False)
    code = cmp.main([*args, "--tracking-uri", store["uri"], "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_cli_missing_database_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LAYERLAB_DEBUG", raising=False)
    missing = tmp_path / "nowhere.db"
    code = cmp.main([EXPERIMENT, "--tracking-uri", f"sqlite:///{missing}"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not missing.exists()  # we did not create an empty store
