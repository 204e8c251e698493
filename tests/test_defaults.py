"""Every default is written twice, in ``conf/*.yaml`` and in the schema's ``spec(default, ...)``: they must agree.

The YAML files are what a user reads and overrides; the schema fills in a key
that is absent.  A default changed in one place only fails here.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from experiments.config.datasets import DATASET_SCHEMAS
from experiments.config.schema import RegistrySchema, RootSchema, SweepSchema, TrackingSchema, TrainingSchema

CONF = Path(__file__).resolve().parent.parent / "conf"
# The option of each group that conf/config.yaml's defaults pick: its values are the defaults.
GROUP_FILES = [
    ("training/default.yaml", TrainingSchema),
    ("tracking/local.yaml", TrackingSchema),
    ("registry/default.yaml", RegistrySchema),
    ("sweep/default.yaml", SweepSchema),
]


def _disagreements(schema: type, node: dict, where: str) -> list[str]:
    """``path: yaml X, schema Y`` for every key of ``node`` whose schema field has a different default."""
    found = []
    for f in dataclasses.fields(schema):
        if f.name not in node:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue  # required: no default to disagree with
        value = node[f.name]
        env = re.fullmatch(r"\$\{oc\.env:\w+,(.*)\}", value) if isinstance(value, str) else None
        if env:  # ${oc.env:KERAS_BACKEND,tensorflow}: the value when the variable is unset
            value = yaml.safe_load(env.group(1))
        if dataclasses.is_dataclass(default):
            found += _disagreements(type(default), value or {}, f"{where}.{f.name}")
        elif value != default or isinstance(value, bool) != isinstance(default, bool):  # False == 0 in Python
            found.append(f"{where}.{f.name}: yaml {value!r}, schema {default!r}")
    return found


@pytest.mark.parametrize("file,schema", GROUP_FILES, ids=[f for f, _ in GROUP_FILES])
def test_group_defaults_agree_with_the_schema(file, schema):
    node = yaml.safe_load((CONF / file).read_text()) or {}
    assert _disagreements(schema, node, file.split("/")[0]) == []


def test_top_level_defaults_agree_with_the_schema():
    node = yaml.safe_load((CONF / "config.yaml").read_text())
    assert _disagreements(RootSchema, node, "") == []


@pytest.mark.parametrize("name", sorted(DATASET_SCHEMAS))
def test_dataset_option_defaults_agree_with_its_schema(name):
    node = yaml.safe_load((CONF / "dataset" / f"{name}.yaml").read_text())
    assert node["name"] == name
    assert _disagreements(DATASET_SCHEMAS[name], node, "dataset") == []


def test_a_changed_default_is_found():
    """The check itself: a YAML value other than the schema's default is reported, nested keys included."""
    assert _disagreements(TrainingSchema, {"shuffle": False, "early_stopping": {"patience": 4}}, "training") == [
        "training.shuffle: yaml False, schema True",
        "training.early_stopping.patience: yaml 4, schema 3",
    ]
    assert _disagreements(RootSchema, {"seed": False}, "") == [".seed: yaml False, schema 0"]
