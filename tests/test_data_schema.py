"""The ``dataset`` schema (experiments.config.datasets): one source for keys, types, ranges and defaults."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import experiments.data as data_mod
from experiments.config.datasets import DATASET_SCHEMAS, check_rules, validate_dataset
from experiments.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf" / "dataset"


def test_one_name_list_for_schema_loaders_and_yaml():
    assert set(DATASET_SCHEMAS) == set(data_mod.DATASETS) == {p.stem for p in CONF_DIR.glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(DATASET_SCHEMAS))
def test_yaml_keys_and_values_are_the_schema_defaults(name):
    """The YAML option documents exactly the schema's keys, with the schema's defaults."""
    yaml = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{name}.yaml"))
    fields = dataclasses.fields(DATASET_SCHEMAS[name])
    assert set(yaml) == {f.name for f in fields}
    defaults = validate_dataset({"name": name})
    assert yaml == defaults


def test_validate_config_is_the_schema():
    cfg = {"name": "synthetic", "shape": [8, 8, 3], "num_classes": 3, "limit": 60}
    assert data_mod.validate_config(cfg) == validate_dataset(cfg)
    assert validate_dataset(cfg) == {
        "name": "synthetic",
        "limit": 60,
        "val_fraction": 0.1,
        "test_fraction": 0.2,
        "shape": [8, 8, 3],
        "num_classes": 3,
        "num_samples": 10000,
    }


def test_dictconfig_with_interpolations_is_resolved():
    root = OmegaConf.create(
        {
            "classes": 4,
            "dataset": {"name": "synthetic", "num_classes": "${classes}", "shape": [4, 4], "num_samples": 40},
        }
    )
    opts = validate_dataset(root.dataset)
    assert opts["num_classes"] == 4 and opts["shape"] == [4, 4] and type(opts["shape"]) is list
    with pytest.raises(ConfigError) as info:
        validate_dataset(
            OmegaConf.create({"classes": 30, "dataset": {**root.dataset, "num_classes": "${classes}"}}).dataset
        )
    assert info.value.path == "dataset.num_samples" and "= 60" in str(info.value)


@pytest.mark.parametrize(
    "node, path, fix",
    [
        (None, "dataset", "select one, e.g. dataset=mnist_sample"),
        ([1, 2], "dataset", "select a config group option, e.g. dataset=mnist_sample"),
        (
            {"name": ["mnist"]},
            "dataset.name",
            "choose one of arrays, digits, fashion_mnist, image_folder, mnist, mnist_sample, synthetic, table",
        ),
        (
            {"name": "mnist_sample", "val_fraction": 0},
            "dataset.val_fraction",
            "set dataset.val_fraction to a fraction such as 0.1",
        ),
        (
            {"name": "mnist", "test_fraction": 1.0},
            "dataset.test_fraction",
            "set dataset.test_fraction to a fraction such as 0.1",
        ),
        (
            {"name": "digits", "val_fraction": 0.5, "test_fraction": 0.5},
            "dataset.test_fraction",
            "make the two fractions sum to less than 1",
        ),
        ({"name": "mnist_sample", "limit": 0}, "dataset.limit", "set dataset.limit=null to use every sample"),
        ({"name": "synthetic", "num_classes": 5, "limit": 9}, "dataset.limit", "set dataset.limit=null"),
        ({"name": "synthetic", "num_samples": 10}, "dataset.num_samples", "raise dataset.num_samples"),
        ({"name": "synthetic", "num_classes": True}, "dataset.num_classes", "set dataset.num_classes=10"),
        ({"name": "synthetic", "shape": [28, 28, 0]}, "dataset.shape", "use e.g. dataset.shape=[28,28]"),
        ({"name": "mnist", "path": " "}, "dataset.path", "set dataset.path=/path/to/mnist.npz or dataset.path=null"),
        ({"name": "mnist_sample", "val_fracton": 0.1}, "dataset.val_fracton", "remove it or fix its spelling"),
    ],
)
def test_errors_are_one_paragraph_with_path_and_fix(node, path, fix):
    with pytest.raises(ConfigError) as info:
        validate_dataset(node)
    text = str(info.value)
    assert info.value.path == path and text.startswith(path)
    assert "\n" not in text
    assert f"Fix: {fix}" in text


def test_limit_error_names_the_class_count():
    with pytest.raises(ConfigError) as info:
        validate_dataset({"name": "mnist_sample", "limit": -5})
    assert "at least 2 x num_classes = 20" in str(info.value)


def test_mnist_test_fraction_is_ignored_but_checked():
    assert validate_dataset({"name": "mnist", "val_fraction": 0.5, "test_fraction": 0.6})["test_fraction"] == 0.6
    assert validate_dataset({"name": "mnist"})["test_fraction"] is None


def test_check_rules_alone():
    schema = DATASET_SCHEMAS["synthetic"]
    check_rules(schema, {"limit": 20, "val_fraction": 0.1, "test_fraction": 0.2, "num_classes": 10, "num_samples": 20})
    with pytest.raises(ConfigError) as info:
        check_rules(
            schema, {"limit": 19, "val_fraction": 0.1, "test_fraction": 0.2, "num_classes": 10, "num_samples": 20}
        )
    assert info.value.path == "dataset.limit"


def test_importing_the_data_package_loads_no_heavy_library():
    code = (
        "import sys, experiments.data, experiments.config.datasets; "
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'mlxtend') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
