"""Datasets are a registry open like the layer registry: a user module under registry.modules registers a loader
by name, a dataset YAML may name its loader with `_target_`, and the listing shows both."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from experiments.config.datasets import DATASET_SCHEMAS
from experiments.config.schema import validate
from experiments.data import DATASETS, load_dataset
from experiments.errors import ConfigError
from tests.conftest import compose

USER_MODULE = '''
import numpy as np
from experiments.data import RawData, register_dataset


@register_dataset("{name}")
def load_waves(opts, seed):
    """Two classes of noisy sine waves."""
    rng = np.random.default_rng(seed)
    y = np.arange(80) % 2
    t = np.linspace(0, 1, 16)
    x = np.sin(2 * np.pi * (1 + y[:, None]) * t) + rng.normal(0, 0.1, (80, 16))
    return RawData(x=x.astype(np.float32), y=y.astype(np.int64), num_classes=2, class_names=("slow", "fast"))


def load_plain(opts, seed):
    """A `_target_` loader: a plain (x, y) tuple is enough."""
    n = int(opts.options["rows"])
    return np.arange(n * 4, dtype=np.float32).reshape(n, 4), np.arange(n) % 4
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = f"waves_{tmp_path.name[-8:].replace('-', '_')}"
    (tmp_path / f"{name}_mod.py").write_text(textwrap.dedent(USER_MODULE.format(name=name)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, f"{name}_mod"
    DATASETS.pop(name, None)
    DATASET_SCHEMAS.pop(name, None)
    sys.modules.pop(f"{name}_mod", None)


def test_a_user_module_registers_a_dataset_by_name(user_module):
    name, module = user_module
    job = validate(compose(f"registry.modules=[{module}]", f"dataset.name={name}", "model=table_mlp"))
    data = load_dataset(job.dataset, job.seed)
    assert data.class_names == ("slow", "fast") and data.task == "binary" and data.input_shape == (16,)
    assert data.origin["source"] == f"loader {name}" and len(data.origin["sha256"]) == 64  # digest of the arrays
    from experiments.job.listing import list_registry

    assert name in list_registry(None) and "Two classes of noisy sine waves" in list_registry(name)


def test_a_target_callable_in_the_dataset_yaml_gets_its_own_keys(user_module):
    _, module = user_module
    job = validate(compose("dataset.name=plain_rows", f"+dataset._target_={module}.load_plain", "+dataset.rows=60"))
    assert job.dataset.options == {"rows": 60}
    data = load_dataset(job.dataset, seed=0)
    assert data.num_classes == 4 and sum(len(y) for _, y in (data.train, data.val, data.test)) == 60


def test_an_unknown_dataset_says_how_to_register_one():
    with pytest.raises(ConfigError) as err:
        validate(compose("dataset.name=nope"))
    assert err.value.path == "dataset.name" and "register_dataset" in str(err.value) and "_target_" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_dataset({"name": "x", "_target_": "no_such_pkg.load"}, seed=0)
    assert err.value.path == "dataset._target_"


def test_the_listing_shows_every_builtin_dataset_and_its_keys():
    from experiments.job.listing import list_registry

    overview = list_registry(None)
    for name in ("mnist", "mnist_sample", "digits", "synthetic", "fashion_mnist", "arrays", "table", "image_folder"):
        assert name in overview.split("Datasets")[1]
    keys = list_registry("image_folder")
    assert all(k in keys for k in ("image_size", "color_mode", "check_images", "[64, 64]"))


def test_registering_a_taken_name_is_refused():
    from experiments.data import register_dataset

    with pytest.raises(ConfigError):
        register_dataset("mnist")(lambda opts, seed: (np.zeros((4, 2)), np.arange(4)))
