"""Fused replicates in sweeps (sweep.fuse_replicates=true): the grouping, then real multiruns fused and not.

The engine (one fit for R seeds) is tested in tests/test_fused.py; here: which
jobs the sweeper fuses, and that a fused sweep's child runs are the runs an
unfused sweep logs (names, params, tags, metrics within 1e-5, loadable models).
"""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest

from experiments.config.fusion import fuse_jobs, replica_overrides
from experiments.config.schema import validate
from experiments.data import load_dataset
from experiments.errors import ConfigError
from experiments.job.fused_job import replica_config
from experiments.tracking import tags
from tests.conftest import TINY, compose, run_cli

JOBS = [[f"model.activation={a}", f"seed={s}", "training.epochs=1"] for a in ("abs", "relu") for s in (0, 1, 2)]


def test_jobs_that_differ_only_in_the_seed_become_one_job_numbered_as_they_were():
    groups = fuse_jobs(JOBS)
    assert [g.seeds for g in groups] == [(0, 1, 2), (0, 1, 2)]
    assert [g.jobs for g in groups] == [(0, 1, 2), (3, 4, 5)]
    assert groups[1].overrides == [
        "model.activation=relu",
        "seed=0",
        "training.epochs=1",
        "sweep.fused_seeds=[0,1,2]",
        "sweep.fused_jobs=[3,4,5]",
    ]


def test_fuse_max_splits_a_group_and_a_later_round_continues_the_numbers():
    groups = fuse_jobs(JOBS, fuse_max=2, first_job=6)  # a second round after 6 jobs
    assert [(g.seeds, g.jobs) for g in groups] == [((0, 1), (6, 7)), ((2,), (8,)), ((0, 1), (9, 10)), ((2,), (11,))]


def test_a_job_without_the_seed_is_left_alone():
    (group,) = fuse_jobs([["model.activation=abs"]], first_job=4)
    assert group.overrides == ["model.activation=abs"] and group.seeds == () and group.jobs == (4,)


def test_only_integer_seeds_can_be_fused():
    with pytest.raises(ConfigError) as info:
        fuse_jobs([["seed=abc"]])
    assert info.value.path == "seed"
    with pytest.raises(ConfigError) as info:
        fuse_jobs(JOBS, replicate_key="dataset.split_seed")
    assert info.value.path == "sweep.replicate_key" and "sweep.replicate_key=seed" in str(info.value)


def test_a_replica_gets_the_overrides_and_config_of_its_solo_job():
    fused = fuse_jobs(JOBS)[0].overrides
    assert replica_overrides(fused, 2) == ["model.activation=abs", "seed=2", "training.epochs=1"]
    cfg = compose(
        "model.activation=abs",
        "seed=0",
        "sweep.fuse_replicates=true",
        "sweep.fused_seeds=[0,1,2]",
        "sweep.fused_jobs=[0,1,2]",
    )
    mine = replica_config(cfg, 2)
    solo = compose("model.activation=abs", "seed=2", "sweep.fuse_replicates=true")
    assert mine == solo and cfg.seed == 0  # the fused job's own config is untouched


def test_the_sweeps_display_names_a_fused_job_by_its_seeds_not_the_sweepers_keys():
    from experiments.sweeps.progress.view import names

    fused = fuse_jobs(JOBS, fuse_max=2)
    jobs = [{"job": i, "overrides": g.overrides} for i, g in enumerate(fused)] + [{"job": 9, "overrides": JOBS[0]}]
    sweep = ["model.activation=abs,relu", "seed=0,1,2", "training.epochs=1"]
    assert names(jobs, sweep) == {
        0: "activation=abs seed=0,1",
        1: "activation=abs seed=2",
        2: "activation=relu seed=0,1",
        3: "activation=relu seed=2",
        9: "activation=abs seed=0",
    }  # an unfused job: as before


def test_the_basic_sweeper_becomes_the_projects_and_an_experiments_sweeper_is_kept():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.utils import get_class

    from experiments.adapters.hydra_internals import BASIC_SWEEPER, PROJECT_SWEEPER, use_project_sweeper
    from tests.conftest import ROOT

    assert get_class(BASIC_SWEEPER).__name__ == "BasicSweeper"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        plain = hydra_compose(config_name="config", return_hydra_config=True)
        search = hydra_compose(config_name="config", overrides=["+experiment=mlp_search"], return_hydra_config=True)
    assert plain.hydra.sweeper._target_ == BASIC_SWEEPER and use_project_sweeper(plain)
    assert plain.hydra.sweeper._target_ == PROJECT_SWEEPER and get_class(PROJECT_SWEEPER).__name__
    assert not use_project_sweeper(search) and "optuna" in search.hydra.sweeper._target_


# ------------------------------------------------------------------ real multiruns
SWEEP = ["model.activation=abs,relu", "seed=0,1,2", *TINY, "training.deterministic=true"]


def _children(uri: str, experiment: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = '{tags.ROLE_JOB}'", max_results=100)
    return sorted(runs, key=lambda r: int(r.data.tags[tags.JOB_NUM]))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-5)


@pytest.mark.slow
def test_a_fused_sweep_logs_the_runs_of_the_unfused_sweep(tmp_path, store):
    """Basic launcher, 2 activations x 3 seeds: the same 6 child runs, fused (2 jobs) or not (6 jobs)."""
    printed = {}
    for name, extra in (("solo", []), ("fused", ["sweep.fuse_replicates=true"])):
        proc = run_cli(
            "-m",
            "hydra/launcher=basic",
            *SWEEP,
            *extra,
            f"tracking.uri={store}",
            f"tracking.experiment={name}",
            tmp_path=tmp_path / name,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        printed[name] = proc.stdout
    assert "layerlab: 6 jobs fused into 2 (sweep.fuse_replicates=true)" in proc.stdout
    # Piped, a sweep job prints no end line of its own (the sweep's display has one line per job): nor does a replica.
    for name, out in printed.items():
        ends = [line for line in out.splitlines() if line.startswith("layerlab: FINISHED") or "| open with" in line]
        assert ends == [], (name, ends)
        jobs = [line for line in out.splitlines() if line.startswith("layerlab: job ")]
        assert len(jobs) == (6 if name == "solo" else 2) and not any("fused_" in line for line in jobs), jobs
    assert any(" FINISHED activation=relu seed=0,1,2 " in line for line in printed["fused"].splitlines())
    solo, fused = _children(store, "solo"), _children(store, "fused")
    assert len(fused) == 6 and all(r.info.status == "FINISHED" for r in fused)
    groups = {r.data.tags[tags.FUSED_GROUP] for r in fused}
    assert groups == {"job 0 seeds 0,1,2", "job 1 seeds 0,1,2"}
    # sweep.close_in_background (default): the first group's runs were closed while the second trained, and
    # unfused, a job's run while the next job trained
    first, second = fused[:3], fused[3:]
    assert max(r.info.end_time for r in first) > min(r.info.start_time for r in second)
    assert any(a.info.end_time > b.info.start_time for a, b in zip(solo, solo[1:]))
    for s, f in zip(solo, fused):
        assert f.info.run_name == s.info.run_name  # e.g. "activation=relu seed=2"
        assert f.data.tags[tags.JOB_NUM] == s.data.tags[tags.JOB_NUM]
        assert f.data.tags[tags.CONFIG_HASH] == s.data.tags[tags.CONFIG_HASH]
        mine, theirs = (json.loads(r.data.tags[tags.OVERRIDES]) for r in (f, s))
        assert [o for o in mine if o.lower() != "sweep.fuse_replicates=true" and not o.startswith("tracking.")] == [
            o for o in theirs if not o.startswith("tracking.")
        ]  # the same job, but for the experiment's name
        assert set(f.data.tags) - set(s.data.tags) == {tags.FUSED_GROUP, tags.FUSED_JOB}
        assert set(f.data.params) == set(s.data.params)
        differ = {k for k in s.data.params if s.data.params[k] != f.data.params[k]}
        assert differ == {"sweep.fuse_replicates", "tracking.experiment"}
        assert set(f.data.metrics) == set(s.data.metrics)
        for key, value in s.data.metrics.items():
            if key != "epoch_time_s" and not key.startswith("sys"):
                assert _close(f.data.metrics[key], value), (s.info.run_name, key, f.data.metrics[key], value)
        history = mlflow.MlflowClient(store).get_metric_history(f.info.run_id, "val_loss")
        assert [m.step for m in history] == [0, 1]
        files = {a.path for a in mlflow.MlflowClient(store).list_artifacts(f.info.run_id)}
        assert {"config.yaml", "history.csv", "model_summary.txt", "plots"} <= files
    # The comparison sees the same runs: the same tests, estimates and verdicts.
    client = mlflow.MlflowClient(store)
    tables = []
    for name in ("solo", "fused"):
        exp = client.get_experiment_by_name(name)
        (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = '{tags.ROLE_PARENT}'")
        tables.append(
            pd.read_csv(
                client.download_artifacts(parent.info.run_id, "comparison/comparison_tests.csv", str(tmp_path / name))
            )
        )
    solo_t, fused_t = tables
    assert list(fused_t.columns) == list(solo_t.columns) and len(fused_t) == len(solo_t) > 0
    for column in solo_t.columns:
        if pd.api.types.is_numeric_dtype(solo_t[column]):
            assert np.allclose(fused_t[column], solo_t[column], atol=1e-4, equal_nan=True), column
        else:
            assert fused_t[column].tolist() == solo_t[column].tolist(), column
    # Each replica's own model: only its weights, loadable like any other logged model.
    mlflow.set_tracking_uri(store)  # models:/m-... resolves through the tracking store
    x = load_dataset(validate(compose(*TINY)).dataset, 0).test[0][:3]
    predictions = [mlflow.pyfunc.load_model(r.data.tags[tags.MODEL_URI]).predict(x) for r in fused[:2]]
    assert np.asarray(predictions[0]).shape[0] == 3
    assert not np.allclose(np.asarray(predictions[0]), np.asarray(predictions[1]))  # two seeds, two models


@pytest.mark.slow
def test_a_fused_sweep_under_the_layerlab_launcher_with_groups_split_by_fuse_max(tmp_path, store):
    proc = run_cli(
        "-m",
        "hydra/launcher=layerlab",
        "hydra.launcher.n_jobs=2",
        *SWEEP,
        "sweep.fuse_replicates=true",
        "sweep.fuse_max=2",
        "tracking.log_model=false",
        "training.checkpoint.enabled=false",
        f"tracking.uri={store}",
        "tracking.experiment=pool",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = _children(store, "pool")
    assert [r.data.tags[tags.JOB_NUM] for r in runs] == [str(n) for n in range(6)]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags[tags.FUSED_GROUP] for r in runs}) == 4  # 3 seeds per activation, at most 2 per job
    assert "6/6 jobs finished" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, message",
    [
        (["sweep.fuse_replicates=true"], "an Optuna search cannot fuse replicates"),
        (
            ["sweep.until.ci_half_width=0.01", "sweep.until.max_replicates=6"],
            "an Optuna search cannot add seeds in rounds",
        ),
    ],
)
def test_an_optuna_search_refuses_to_fuse_or_add_rounds(tmp_path, store, flag, message):
    proc = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "model.activation=choice(abs,relu)",
        *TINY,
        *flag,
        f"tracking.uri={store}",
        tmp_path=tmp_path,
    )
    assert proc.returncode != 0
    assert message in proc.stdout and flag[0].split("=")[0].rsplit(".", 1)[0] in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_diverging_replica_fails_alone_as_its_solo_run_does(tmp_path, store):
    """SGD at learning rate 94 diverges for some seeds only (here seeds 0 and 4 of 0-4; found by a sweep of rates):
    fused, exactly those replicas' runs FAIL with the solo message while the others FINISH."""
    args = [
        "optimizer=sgd",
        "optimizer.learning_rate=94",
        "seed=0,1,2,3,4",
        "dataset.limit=400",
        "training.epochs=3",
        "training.batch_size=128",
        "training.deterministic=true",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        "training.checkpoint.enabled=false",
        "sweep.compare=false",
        f"tracking.uri={store}",
    ]
    outcome = {}
    for name, extra in (("solo", []), ("fused", ["sweep.fuse_replicates=true"])):
        proc = run_cli(
            "-m", "hydra/launcher=basic", *args, *extra, f"tracking.experiment={name}", tmp_path=tmp_path / name
        )
        runs = _children(store, name)
        outcome[name] = {r.data.params["seed"]: (r.info.status, r.data.tags.get(tags.ERROR, "")) for r in runs}
        statuses = {status for status, _ in outcome[name].values()}
        assert proc.returncode != 0 and statuses == {"FAILED", "FINISHED"}, (name, outcome[name])
    assert outcome["fused"] == outcome["solo"]  # the same seeds fail, with the same message
    assert all("the training loss became" in error for status, error in outcome["fused"].values() if status == "FAILED")


def test_fusion_reads_overrides_as_hydra_does():
    """``+seed=3`` sets the seed as ``seed=3`` does: grouped as a replicate, and a replica keeps the ``+``."""
    from experiments.config.fusion import fuse_jobs, group_overrides, replica_overrides

    groups = fuse_jobs([["model.activation=abs", "+seed=0"], ["model.activation=abs", "+seed=1"]])
    assert len(groups) == 1 and groups[0].seeds == (0, 1)
    assert replica_overrides(groups[0].overrides, 1) == ["model.activation=abs", "+seed=1"]
    assert group_overrides(groups[0].overrides) == ["model.activation=abs", "+seed=0,1"]


def test_a_fused_job_that_left_no_run_is_listed_as_its_replicas(tmp_path):
    """Its status file (any launcher) and the layerlab launcher's ledger both give one summary row per replica."""
    from experiments.launching.ledger import unstarted_rows, write_ledger
    from experiments.sweeps.finalize import ended_without_run_rows
    from experiments.training.progress_file import PROGRESS_DIR, write_status

    fused = ["model.activation=abs", "seed=0", "sweep.fused_seeds=[0,1,2]", "sweep.fused_jobs=[3,4,5]"]
    write_status(
        tmp_path / PROGRESS_DIR / "1.json",
        fresh=True,
        job=1,
        overrides=fused,
        status="FAILED",
        error="ConfigError: training.strategy: fused replicates train on one device",
    )
    write_status(tmp_path / PROGRESS_DIR / "0.json", fresh=True, job=0, overrides=["seed=9"], status="FINISHED")
    rows = ended_without_run_rows(tmp_path, seen_jobs={"4"})
    assert [(r["job"], r["status"]) for r in rows] == [("3", "FAILED"), ("5", "FAILED")]
    assert rows[0]["rerun"] == "python runner.py model.activation=abs seed=0"
    assert rows[1]["rerun"] == "python runner.py model.activation=abs seed=2" and "one device" in rows[1]["error"]
    write_ledger(tmp_path, {1: {"overrides": fused, "state": "lost", "error": "killed by signal 9"}})
    assert [r["job"] for r in unstarted_rows(tmp_path, seen_jobs=set())] == ["3", "4", "5"]


@pytest.mark.slow
def test_a_fused_job_that_dies_before_its_runs_exist_is_in_the_summary(tmp_path, store):
    proc = run_cli(
        "-m",
        "seed=0,1",
        "sweep.fuse_replicates=true",
        "training.strategy=mirrored",
        *TINY,
        "sweep.compare=false",
        f"tracking.uri={store}",
        tmp_path=tmp_path,
    )
    assert proc.returncode != 0
    assert "job 0 FAILED" in proc.stdout and "job 1 FAILED" in proc.stdout, proc.stdout[-3000:]
    assert "rerun alone: python runner.py seed=1" in proc.stdout
