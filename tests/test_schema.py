"""The config schema (experiments/config): one place for every group's keys, types and ranges."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from omegaconf import open_dict

from experiments.config.metrics import MetricSpec, compared_metric, default_mode
from experiments.config.schema import GROUPS, validate
from experiments.errors import ConfigError
from tests.conftest import ROOT, compose


def test_the_default_config_is_valid_and_comes_back_resolved():
    data = validate(compose())
    assert data.training.epochs == 20 and data.model.name == "lambda_mlp"
    assert "hydra" not in data.extra


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_shipped_option_of_a_group_matches_its_schema(group):
    """A key in a YAML file without a schema field (or the reverse typo) fails here, not in a user's run."""
    for path in sorted((ROOT / "conf" / group).glob("*.yaml")):
        overrides = [f"{group}={path.stem}"]
        if group == "tracking" and path.stem == "server":
            overrides.append("tracking.uri=http://127.0.0.1:5005")  # the YAML reads $MLFLOW_TRACKING_URI
        validate(compose(*overrides))


@pytest.mark.parametrize(
    "override,path,expect",
    [
        ("training.epochs=0", "training.epochs", "expected a positive integer"),
        ("training.epochs=2.5", "training.epochs", "expected a positive integer"),
        ("training.batch_size=true", "training.batch_size", "expected a positive integer"),
        ("training.strategy=ring", "training.strategy", "expected one of default, mirrored, multi_worker"),
        ("training.verbose=3", "training.verbose", "expected auto, 0, 1 or 2"),
        ("training.checkpoint.every_s=-1", "training.checkpoint.every_s", "non-negative"),
        ("training.early_stopping.patience=-2", "training.early_stopping.patience", "non-negative"),
        ("optimizer.learning_rate=fast", "optimizer.learning_rate", "expected a positive number"),
        ("tracking.experiment=' '", "tracking.experiment", "non-empty"),
        ("tracking.timeout_s=0", "tracking.timeout_s", "positive number of seconds"),
        ("sweep.mode=up", "sweep.mode", "max or min"),
        ("seed=-1", "seed", "non-negative integer"),
        ("dataset.limit=7", "dataset.limit", "at least 2 x num_classes"),
        ("model.activation=3", "model.activation", "activation name"),
    ],
)
def test_bad_values_name_the_path_what_is_expected_and_the_fix(override, path, expect):
    with pytest.raises(ConfigError) as info:
        validate(compose(override))
    text = str(info.value)
    assert info.value.path == path and text.startswith(path)
    assert expect in text and "Fix:" in text and "\n" not in text


def test_unknown_key_in_a_group_yaml_is_reported_with_the_closest_name(tmp_path):
    cfg = compose("+training.epoch=3")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert info.value.path == "training.epoch" and "did you mean 'epochs'" in str(info.value)


def test_user_keys_at_the_top_level_are_kept():
    assert validate(compose("+notes.owner=alice")).extra["notes"] == {"owner": "alice"}


def test_missing_group_says_how_to_add_it():
    cfg = compose()
    with open_dict(cfg):
        del cfg["optimizer"]
    with pytest.raises(ConfigError, match="pass `optimizer=<option>`"):
        validate(cfg)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ((), MetricSpec("sparse_categorical_accuracy", "max")),
        (("training.metrics=[accuracy]",), MetricSpec("accuracy", "max")),
        (("training.metrics=[]",), MetricSpec("loss", "min")),
        (("training.metrics=[mae,accuracy]",), MetricSpec("mae", "min")),
        (("sweep.metric=loss",), MetricSpec("loss", "min")),
        (("sweep.metric=val_accuracy", "sweep.mode=min"), MetricSpec("accuracy", "min")),
    ],
)
def test_the_judged_metric_comes_from_the_config(overrides, expected):
    spec = compared_metric(compose(*overrides))
    assert spec == expected
    assert spec.val == f"val_{expected.name}" and spec.test == f"test_{expected.name}"


def test_metric_direction():
    assert default_mode("val_loss") == "min" and default_mode("auc") == "max"
    assert MetricSpec("loss", "min").better(0.1, 0.2) and MetricSpec("accuracy").better(0.9, 0.8)


def test_no_second_table_of_rules():
    """The old hand-written RULES table is gone: the schema classes are the only rules."""
    source = "\n".join(p.read_text() for p in (ROOT / "experiments").rglob("*.py"))
    assert "RULES" not in source and "_kind_ok" not in source
    for yaml_file in (ROOT / "conf" / "training").glob("*.yaml"):
        assert set(yaml.safe_load(yaml_file.read_text())) <= set(GROUPS["training"].__dataclass_fields__)


def test_yaml_comments_document_every_training_key():
    text = (ROOT / "conf" / "training" / "default.yaml").read_text()
    for line in text.splitlines():
        if line and not line.startswith(("#", " ")) and ":" in line and not line.rstrip().endswith(":"):
            assert "#" in line, f"undocumented key: {line}"


def test_precheck_uses_hydra_to_reject_an_unknown_group_option():
    from experiments.config.precheck import CONF, check, check_group_options

    assert (CONF / "config.yaml").is_file()
    with pytest.raises(ConfigError) as info:
        check_group_options(["model=lambda_mlp,lamda_mlp"])
    assert info.value.path == "model" and "did you mean 'lambda_mlp'" in str(info.value)
    check(["model=class_mlp", "training.epochs=3", "seed=0,1"])  # valid: no error


def test_validate_returns_frozen_typed_objects_with_the_schema_defaults():
    import dataclasses

    from experiments.config.datasets import SyntheticSchema
    from experiments.config.schema import JobConfig, TrackingSchema

    job = validate(
        compose("dataset=synthetic", "+optuna.study=s", "+optuna.storage=sqlite:///x.db", "+optuna.trial_number=3")
    )
    assert isinstance(job, JobConfig) and isinstance(job.dataset, SyntheticSchema)
    assert job.tracking.timeout_s == TrackingSchema.__dataclass_fields__["timeout_s"].default
    assert job.sweep.replicate_key == "seed" and isinstance(job.training.metrics, tuple)
    assert job.optuna.trial_number == 3 and job.metric == compared_metric(compose())
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.training.epochs = 5  # type: ignore[misc]
    assert validate(compose()).optuna is None


def test_a_sweeps_parent_reads_its_settings_typed_and_one_launcher_rule():
    from experiments.config.launcher import (
        LauncherSettings,
        available_cores,
        launcher_settings,
        parallel_jobs,
        threads_per_worker,
    )
    from experiments.config.multirun import multirun_config
    from experiments.launching.warm import JOBLIB_LAUNCHER

    settings = multirun_config(compose("sweep.replicate_key=run", "tracking.experiment=e"))
    assert settings.sweep.replicate_key == "run" and settings.tracking.experiment == "e"
    with pytest.raises(ConfigError) as info:
        multirun_config(compose("tracking.timeout_s=0"))
    assert info.value.path == "tracking.timeout_s"
    cores = available_cores()
    joblib = launcher_settings({"_target_": JOBLIB_LAUNCHER, "n_jobs": 2})
    assert joblib.kind == "joblib" and joblib.workers() == 2 and joblib.threads_per_job() == max(1, cores // 2)
    assert parallel_jobs(-1) == cores and parallel_jobs(8, n_tasks=3) == 3 and threads_per_worker(cores) == 1
    assert LauncherSettings().kind == "none" and LauncherSettings().threads_per_job() is None
    # A process pinned to one core (taskset, a container's cpuset) counts that core, not the machine's.
    pinned = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-c",
            "from experiments.config.launcher import parallel_jobs as p; print(p(-1))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pinned.stdout.split() == ["1"], pinned.stderr[-2000:]
    assert (
        launcher_settings(
            {"_target_": "hydra_plugins.layerlab_launcher.layerlab_launcher.LayerlabLauncher", "n_jobs": 2}
        ).threads_per_job()
        is None
    )  # its workers get theirs at spawn


def test_the_sweep_context_is_one_public_object():
    from experiments.config.launcher import LauncherSettings
    from experiments.sweeps import current_sweep
    from experiments.sweeps.state import SweepState

    context = current_sweep()
    assert context is current_sweep() and context.state is None
    state = SweepState(
        uri="",
        experiment="",
        experiment_id="",
        parent_run_id="p",
        sweep_id="s",
        sweep_dir=ROOT / "multirun",
        metric=MetricSpec("loss", "min"),
    )
    context.activate(state)
    try:
        assert current_sweep().parent_run_id == "p" and current_sweep().ledger_dir == ROOT / "multirun"
    finally:
        assert context.take() is state and context.state is None
    assert isinstance(context.launcher, LauncherSettings)


@pytest.mark.parametrize(
    "value,target",
    [
        (None, None),
        (False, None),
        ("false", None),
        ("Null", None),
        ("none", None),
        (True, True),
        ("TRUE", True),
        ("3f2a9c", "3f2a9c"),
    ],
)
def test_training_resume_is_read_once_by_the_typed_config(value, target):
    from experiments.config.schema import TrainingSchema

    training = TrainingSchema(epochs=1, batch_size=8, loss="mse", resume=value)
    assert training.resume_target == target
