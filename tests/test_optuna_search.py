"""hydra/sweeper=optuna: the search space, pruning across joblib workers, the study's MLflow parent, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, TINY, run_cli

SPACE = ["'optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))'", "'model.activation=choice(abs, relu)'"]
SPACE = [s.strip("'") for s in SPACE]  # no shell between us and Hydra
FAST = ["tracking.log_model=false", "tracking.log_plots=false"]


def test_search_space_from_hydra_syntax():
    import optuna.distributions as d

    from hydra_plugins.layerlab_optuna._space import parse_space

    space, fixed = parse_space(
        [*SPACE, "model.layers.2.units=range(32, 257, 32)", "seed=3"],
        {"training.batch_size": "choice(64, 128)", "model.activation": "choice(elu)"},
    )
    assert space["optimizer.learning_rate"] == d.FloatDistribution(1e-4, 1e-1, log=True)
    assert space["model.activation"] == d.CategoricalDistribution(["abs", "relu"])  # the command line wins
    assert space["model.layers.2.units"] == d.IntDistribution(32, 256, step=32)
    assert space["training.batch_size"] == d.CategoricalDistribution([64, 128])
    assert fixed == ["seed=3"]


def test_precheck_lets_interval_through_with_the_optuna_sweeper():
    from experiments.config.precheck import check_sweep_overrides
    from experiments.errors import ConfigError

    check_sweep_overrides(["-m", "hydra/sweeper=optuna", SPACE[0]])
    with pytest.raises(ConfigError):
        check_sweep_overrides(["-m", SPACE[0]])


def _study(tmp_path, name="s"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/optuna.db")


def _children(tmp_path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("layerlab")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in runs if r.data.tags.get("layerlab.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("layerlab.role") == "job"]
    return client, parents, children


@pytest.mark.slow
def test_twelve_trials_on_two_joblib_workers_prune_and_report_to_one_parent(tmp_path):
    from optuna.trial import TrialState

    res = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=12",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.pruner.n_startup_trials=2",
        *SPACE,
        *TINY,
        "training.epochs=4",
        *FAST,
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    study = _study(tmp_path)
    states = [t.state for t in study.trials]
    assert len(states) == 12 and TrialState.PRUNED in states and TrialState.FAIL not in states
    client, parents, children = _children(tmp_path)
    assert len(parents) == 1 and len(children) == 12
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    numbers = [int(c.data.tags["trial_number"]) for c in children]
    assert sorted(numbers) == list(range(12))  # no duplicates
    pruned = [c for c in children if c.data.tags.get("layerlab.pruned") == "true"]
    assert len(pruned) == states.count(TrialState.PRUNED)
    assert all(c.info.status == "FINISHED" and int(c.data.tags["layerlab.pruned_epoch"]) < 4 for c in pruned)
    key = "val_sparse_categorical_accuracy"
    complete = [c for c in children if c.data.tags.get("layerlab.pruned") != "true"]
    best_child = max(complete, key=lambda c: c.data.metrics[key])
    assert study.best_value == pytest.approx(best_child.data.metrics[key])
    best = study.best_trial
    by_number = {int(c.data.tags["trial_number"]): c for c in children}
    assert by_number[best.number].data.metrics[key] == pytest.approx(best.value)
    assert float(by_number[best.number].data.params["optimizer.learning_rate"]) == pytest.approx(
        best.params["optimizer.learning_rate"]
    )
    parent = client.get_run(parent.info.run_id)
    assert parent.data.tags["layerlab.study"] == "s" and parent.data.tags["layerlab.best_trial"] == str(best.number)
    assert "space.optimizer.learning_rate" in parent.data.params and parent.data.params["sampler.type"] == "tpe"
    assert "Rerun it alone" in parent.data.tags["mlflow.note.content"]
    assert len(client.get_metric_history(parent.info.run_id, "best_value")) == 12
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
    assert {"optuna/optimization_history.png", "optuna/param_importances.png", "optuna/slice.png"} <= arts


def _finished(tmp_path) -> int:
    try:
        return sum(t.state.is_finished() for t in _study(tmp_path).trials)
    except Exception:
        return 0


@pytest.mark.slow
def test_a_killed_study_is_continued_up_to_n_trials(tmp_path):
    args = [
        sys.executable,
        str(ROOT / "runner.py"),
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.sampler.seed=1",
        *SPACE,
        *TINY,
        *FAST,
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.sweep.dir={tmp_path}/multirun",
    ]
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 300
    while _finished(tmp_path) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _finished(tmp_path)
    assert 2 <= first < 6
    res = run_cli(*args[2:-1], tmp_path=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    trials = _study(tmp_path).trials
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert f"{first} trial(s) done" in res.stdout or "trial(s) done" in res.stdout
    drawn = [tuple(t.params.values()) for t in trials if t.params]
    assert len(set(drawn)) == len(drawn)  # the continued search draws new values
    _, parents, children = _children(tmp_path)
    (parent,) = [p for p in parents if p.info.lifecycle_stage == "active"]
    # A trial killed with the first search may have no run; every completed trial has one, under the parent.
    complete = {t.number for t in trials if t.state.name == "COMPLETE"}
    _assert_one_study_parent(parent, children, trials=len(trials), reopened=1, every_trial=False)
    assert complete <= {int(c.data.tags["trial_number"]) for c in children}


def _assert_one_study_parent(parent, children, trials: int, reopened: int, every_trial: bool = True) -> None:
    """Every trial's run is a child of the study's one parent, named by the swept keys only; the parent was never
    closed as lost (no error tag): FINISHED, or FAILED by the summary because a trial's run failed (a trial
    killed with the first search)."""
    failed_trial = any(c.info.status == "FAILED" for c in children)
    assert parent.info.status == "FINISHED" or (parent.info.status == "FAILED" and failed_trial), parent.info.status
    assert "layerlab.error" not in parent.data.tags
    assert parent.data.tags.get("layerlab.reopened") == str(reopened)
    numbers = sorted(int(c.data.tags["trial_number"]) for c in children)
    assert len(set(numbers)) == len(numbers) and set(numbers) <= set(range(trials))
    if every_trial:
        assert numbers == list(range(trials))
    assert all(c.data.tags.get("mlflow.parentRunId") == parent.info.run_id for c in children)
    for child in children:  # e.g. "activation=abs learning_rate=0.0123", never the fixed keys (epochs, uri, ...)
        keys = {word.split("=", 1)[0] for word in child.info.run_name.split()}
        assert keys == {"activation", "learning_rate"}, child.info.run_name


@pytest.mark.slow
def test_a_finished_study_continues_in_its_parent_under_joblib_and_layerlab(tmp_path):
    """The second and third searches reopen the first one's parent: no trial becomes a top-level orphan run."""
    base = [
        "-m",
        "hydra/sweeper=optuna",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.study_name=s",
        *SPACE,
        *TINY,
        "training.epochs=1",
        *FAST,
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    for step, (launcher, n_trials) in enumerate((("joblib", 2), ("layerlab", 4), ("joblib", 5))):
        res = subprocess.run(
            [
                sys.executable,
                str(ROOT / "runner.py"),
                *base,
                f"hydra/launcher={launcher}",
                f"hydra.sweeper.n_trials={n_trials}",
                f"hydra.sweep.dir={tmp_path}/multirun{step}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert "closed run" not in res.stdout  # the reopened parent is never taken for a lost one
        assert f"{n_trials}/{n_trials} jobs finished" in res.stdout  # the summary counts every trial of the study
    _, parents, children = _children(tmp_path)
    (parent,) = [p for p in parents if p.info.lifecycle_stage == "active"]
    _assert_one_study_parent(parent, children, trials=5, reopened=2)
    assert len(_study(tmp_path).trials) == 5


@pytest.mark.slow
def test_a_failing_trial_is_failed_and_the_search_goes_on(tmp_path):
    from optuna.trial import TrialState

    res = run_cli(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.sampler.type=grid",
        "model.activation=choice(relu, no_such_activation)",
        "optimizer.learning_rate=choice(0.001, 0.01)",
        *TINY,
        *FAST,
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        tmp_path=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    states = [t.state for t in _study(tmp_path).trials]
    assert states.count(TrialState.FAIL) == 2 and states.count(TrialState.COMPLETE) == 2
    assert "2 failed" in res.stdout
