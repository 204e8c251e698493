"""Every model of conf/model/ runs by name: directly, or through conf/experiment/<name>.yaml when it needs
data, a loss or metrics of its own (conv_binary: synthetic RGB images, a binary loss)."""

from __future__ import annotations

import mlflow
import pytest

from experiments.job.context import JobContext
from experiments.job.dry_run import dry_run
from experiments.tracking import tags
from tests.conftest import ROOT, compose, run_cli

MODELS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))


def by_name(name: str) -> list[str]:
    """The overrides that run ``name``: its experiment file if it has one, else ``model=<name>``."""
    return [f"+experiment={name}"] if (ROOT / "conf" / "experiment" / f"{name}.yaml").is_file() else [f"model={name}"]


def test_the_walk_sees_every_shipped_model():
    assert {"lambda_mlp", "class_mlp", "class_mlp_functional", "conv_binary", "rectifier_mlp", "residual_graph"} <= set(
        MODELS
    )
    assert by_name("conv_binary") == ["+experiment=conv_binary"] and by_name("lambda_mlp") == ["model=lambda_mlp"]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_dry_runs_by_name(name, tmp_path, capsys):
    cfg = compose(*by_name(name), "dry_run=true")
    assert cfg.model.name == name
    result = dry_run(cfg, JobContext(output_dir=str(tmp_path / "out")))
    out = capsys.readouterr().out
    assert result.status == "DRY_RUN"
    assert "Total params" in out and f"dry run: {name} builds with" in out


def test_conv_binary_experiment_pins_rgb_images_and_a_binary_loss():
    cfg = compose("+experiment=conv_binary")
    assert cfg.dataset.name == "synthetic" and list(cfg.dataset.shape)[-1] == 3 and cfg.dataset.num_classes == 2
    assert cfg.training.loss == "binary_crossentropy" and cfg.model.input.shape is None


@pytest.mark.slow
def test_every_model_trains_one_epoch_by_name(tmp_path, store):
    """One CLI sweep over the models that run with ``model=<name>`` (one process, not one each: TensorFlow's import
    is most of a tiny run), one run for each model with an experiment file; every model's run FINISHED."""
    plain = [m for m in MODELS if by_name(m)[0].startswith("model=")]
    own = [m for m in MODELS if m not in plain]
    common = ["training.epochs=1", f"tracking.uri={store}", "tracking.log_plots=false", "tracking.log_model=false"]
    sweep = run_cli(
        "-m",
        f"model={','.join(plain)}",
        "dataset.limit=400",
        "training.batch_size=128",
        "sweep.compare=false",
        *common,
        tmp_path=tmp_path,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    for name in own:
        proc = run_cli(*by_name(name), *common, tmp_path=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert any(line.startswith("layerlab: FINISHED") for line in proc.stdout.splitlines()), proc.stdout[-2000:]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        max_results=100,
        filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_JOB}'",
    )
    status = sorted((r.data.params["model.name"], r.info.status) for r in runs)
    assert status == [(name, "FINISHED") for name in sorted(MODELS)], status  # each model once, FINISHED
