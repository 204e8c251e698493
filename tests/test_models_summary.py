"""experiments.models.describe: the summary table at full width without touching the environment."""

from __future__ import annotations

import os

import keras
import yaml

from experiments.models import build_model, count_params, summary_text
from tests.conftest import compose


def _keras_summary(model, monkeypatch) -> str:
    """Keras' own summary, widened the old way ($COLUMNS), for comparison."""
    monkeypatch.setenv("COLUMNS", "120")
    lines: list[str] = []
    model.summary(line_length=110, print_fn=lambda text, line_break=True: lines.append(text))
    return "\n".join(lines) + "\n"


def test_summary_is_full_width_and_leaves_the_environment_alone(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("TERM", "dumb")
    model = build_model(compose("model=residual_graph").model)
    before = dict(os.environ)
    text = summary_text(model)
    assert dict(os.environ) == before
    assert max(len(line) for line in text.splitlines()) == 110
    assert "Connected to" in text and "proj[0][0], proj[1][0]" in text
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__})" in text
    assert f"Total params: {count_params(model)['total']:,}" in text
    assert text.endswith("\n\n")


def test_summary_matches_keras_own_summary(monkeypatch):
    for name in ("class_mlp", "class_mlp_functional", "residual_graph", "conv_binary"):
        model = build_model(compose(f"model={name}").model)
        ours = summary_text(model)
        assert ours == _keras_summary(model, monkeypatch), name


def test_summary_of_a_multi_input_model_keeps_names_literally():
    model = build_model(
        yaml.safe_load("""
    name: "two[in]"
    inputs: {a: {shape: [8]}, b: {shape: [8, 3]}}
    nodes:
      fa: {type: Dense, units: 4, inputs: a, name: "x[bold]y"}
      fb: {type: Flatten, inputs: b}
      cat: {type: Concatenate, inputs: [fa, fb]}
      out: {type: Dense, units: 1, inputs: cat}
    outputs: [out]
    """)
    )
    text = summary_text(model)
    assert 'Model: "two[in]"' in text
    assert "x[bold]y (Dense)" in text and "x[bold]y[0][0]" in text
    assert "b (InputLayer)" in text and "(None, 8, 3)" in text


def test_summary_counts_optimizer_state_once_built():
    model = build_model(compose("model=class_mlp").model)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    text = summary_text(model)
    assert " Trainable params: 134,794 " in text
    assert " Optimizer params: 269,590 " in text  # Adam: 2 moments per weight, iteration count, learning rate
    assert " Total params: 404,384 " in text
    assert count_params(model)["total"] == 134_794  # optimizer state excluded
