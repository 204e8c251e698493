"""What a job writes into its MLflow run besides metrics: params, config files, tables, plots, the model."""

from __future__ import annotations

import functools
from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from experiments.analysis import run_plots
from experiments.config.access import flatten, resolved_container
from experiments.config.schema import JobConfig
from experiments.tracking import tags
from experiments.tracking.channel import RunChannel
from experiments.tracking.redaction import params_from_flat, redact
from experiments.training.evaluate import predict_classes, predict_proba


def log_params(cfg: DictConfig, channel: RunChannel) -> None:
    """The resolved config, flattened to dotted params (secrets redacted, long values cut, both noted)."""
    params, notes = params_from_flat(flatten(resolved_container(cfg)))
    channel.track("params", lambda: mlflow.log_params(params))
    if notes:
        channel.track("param notes", lambda: mlflow.set_tag(tags.PARAM_NOTES, "; ".join(notes)[:5000]))


def log_config_files(cfg: DictConfig, out_dir: Path, channel: RunChannel) -> None:
    """``config.yaml`` (resolved) and Hydra's ``.hydra/*.yaml``, redacted: overrides may hold credentials."""
    text = OmegaConf.to_yaml(resolved_container(cfg), sort_keys=False)
    channel.track("config.yaml", lambda: mlflow.log_text(redact(text), "config.yaml"))
    hydra_dir = out_dir / ".hydra"
    if hydra_dir.is_dir():
        for f in sorted(hydra_dir.glob("*.yaml")):
            content = f.read_text()
            channel.track(f".hydra/{f.name}", functools.partial(mlflow.log_text, redact(content), f".hydra/{f.name}"))


def log_outputs(job: JobConfig, model, data, history, out_dir: Path, channel: RunChannel) -> None:
    """history.csv, the plots and the model; kept in ``out_dir/artifacts`` for a later upload when offline."""
    batch_size = job.training.batch_size
    art = out_dir / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    hist = pd.DataFrame(history.history if history is not None else {})
    hist.index.name = "epoch"
    hist.to_csv(art / "history.csv")
    if job.tracking.log_plots:
        metric = str(job.training.metrics[0]) if job.training.metrics else "loss"
        plot_files = run_plots.plot_history(hist, art, metric)
        if data.task != "regression":  # class plots; streamed images: the first 10,000 test samples decoded
            x_test, y_test = data.arrays("test", None if data.stream is None else 10_000)
            y_pred = predict_classes(model, x_test, batch_size)
            plot_files.append(run_plots.plot_predictions(y_test, y_pred, art))
            k = max(int(data.num_classes), int(y_pred.max()) + 1)
            plot_files.append(run_plots.plot_confusion(y_test, y_pred, k, art))
        for f in plot_files:
            channel.track(f"plots/{f.name}", functools.partial(mlflow.log_artifact, str(f), "plots"))
    channel.track("history.csv", lambda: mlflow.log_artifact(str(art / "history.csv")))
    if data.class_names:  # index -> name, beside the model, so its outputs can be read as names
        import json

        (art / "class_names.json").write_text(json.dumps(list(data.class_names)))
        channel.track("class_names.json", lambda: mlflow.log_artifact(str(art / "class_names.json")))
    if job.tracking.log_model:
        if channel.online:
            modules = list(job.registry.modules)
            channel.track(
                "model", lambda: log_model(model, data.arrays("test", 8)[0], modules, data.class_names, data.task)
            )
        if not channel.online:  # keep the model for a later upload
            model.save(art / "model.keras")


def log_model(model, x_example, modules=(), class_names=None, task=None) -> None:
    """The model with its signature, an input example and its own code (:mod:`experiments.job.packaging`).

    A classifier's signature declares the inference parameter ``output`` (``probabilities``, the default, or
    ``labels``: the name in ``class_names`` of each row's class; :mod:`experiments.job.pyfunc_loader`).

    It loads with ``mlflow.pyfunc.load_model(uri)`` anywhere TensorFlow, Keras
    and MLflow are installed; ``mlflow.keras.load_model`` or the ``.keras`` file
    need the custom layers registered first (``import layers``; ``docs/serving.md``).
    """
    import keras
    import tensorflow as tf
    from mlflow.models import infer_signature

    from experiments.job.packaging import example_rows, log_self_contained_model, model_metadata, output_params

    signature = infer_signature(x_example, predict_proba(model, x_example, len(x_example)), params=output_params(task))
    # Explicit requirements: inference would import-scan for seconds and list only keras.
    info = log_self_contained_model(
        model,
        signature,
        example_rows(x_example),
        [f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}", f"mlflow=={mlflow.__version__}"],
        modules,
        model_metadata(class_names, task),
    )
    mlflow.set_tag(tags.MODEL_URI, info.model_uri)
