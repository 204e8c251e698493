"""``list_layers=true`` lists every name; ``list_layers='*Dense*'`` the matching layers with their arguments."""

from __future__ import annotations

import pytest

from experiments.errors import ConfigError
from experiments.job.listing import list_registry
from tests.conftest import run_cli


def test_a_pattern_lists_the_matching_layers_with_their_arguments():
    text = list_registry("*dense*", width=100)  # case-insensitive, as docs/layers.md promises
    heads = [line.split()[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert {"Dense", "SimpleDense", "ResidualDense", "EinsumDense"} <= set(heads)
    assert "Conv2D" not in heads
    residual = text[text.index("ResidualDense  (layers.dense)") :]
    assert residual.splitlines()[1].split()[:4] == ["units", "=", "32", "integer"]
    dense = text[text.index("Dense  (keras)") :]
    assert dense.splitlines()[1].split()[:3] == ["units", "required", "integer"]
    assert "base Layer arguments: activity_regularizer, trainable, dtype, autocast, name" in dense


def test_an_exact_name_and_functions_match_too():
    text = list_registry("Conv2D", width=100)
    assert text.startswith("Conv2D  (keras)") and "kernel_size" in text and "Conv1D" not in text
    assert "absolute (alias abs" in list_registry("abs", width=100)


def test_no_match_is_a_config_error_with_close_names():
    with pytest.raises(ConfigError) as err:
        list_registry("Dnse")
    assert err.value.path == "list_layers" and "did you mean 'Dense'" in str(err.value)


def test_true_lists_every_name_and_says_how_to_see_arguments():
    text = list_registry(None)
    assert "ResidualDense" in text and "Conv2D" in text and "rectifier" in text
    assert "list_layers='*Dense*'" in text


@pytest.mark.slow
def test_the_runner_filters_and_loads_the_users_registry_modules(tmp_path):
    proc = run_cli("list_layers=*scale*", "registry.modules=[tests.fixtures.user_layers]", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Scale  (tests.fixtures.user_layers)  Multiplies the input by a constant factor." in proc.stdout
    heads = {line.split()[0] for line in proc.stdout.splitlines() if line and not line.startswith(" ")}
    assert {"Scale", "RandomGrayscale"} <= heads and "Dense" not in heads
    assert "factor" in proc.stdout
    bad = run_cli("list_layers=Dnse", tmp_path=tmp_path)
    assert (
        bad.returncode == 2 and "layerlab: error: list_layers = 'Dnse'" in bad.stderr and "Traceback" not in bad.stderr
    )
