"""The dataset registry: option name -> loader, open to user modules like the layer registry.

The loader contract
-------------------
A loader is a function ``loader(opts, seed) -> RawData``:

* ``opts`` is the option's frozen schema instance: ``opts.name``, ``opts.limit``, ``opts.val_fraction``,
  ``opts.test_fraction`` and the option's own keys (for a loader registered without a schema, or named by
  ``_target_`` in a dataset YAML, the further YAML keys are the dict ``opts.options``);
* ``seed`` is the run's seed (for generated data; the splits are made afterwards, stratified and seeded);
* it returns a :class:`~experiments.data.raw.RawData`: the arrays in memory (``x``, ``y``, ``num_classes``, an
  optional official ``test`` split) or, for data larger than memory, one path per sample in ``x`` and a ``stream``
  that reads them through ``tf.data``; ``task`` (``classification``, ``binary``, ``regression``, or ``None`` to
  infer it), ``class_names`` and ``origin`` (``source`` and a ``sha256`` of what was read) complete it.
  A plain ``(x, y)`` tuple is accepted too (classes counted from ``y``, digest computed from the arrays).

Register one from a module listed under ``registry.modules``::

    from experiments.data import RawData, register_dataset

    @register_dataset("my_sensors")          # then: python runner.py dataset=my_sensors ... (or a conf/dataset YAML)
    def load_my_sensors(opts, seed):
        x, y = ...
        return RawData(x=x, y=y, num_classes=3)

or name the function in a dataset YAML without registering it: ``name: my_sensors`` and
``_target_: my_pkg.data.load_my_sensors``; every other key of that YAML reaches the loader in ``opts.options``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from experiments.config.datasets import DATASET_SCHEMAS, DatasetSchema, OpenSchema, register_dataset_schema
from experiments.data.provenance import sha256_arrays
from experiments.data.raw import RawData
from experiments.errors import ConfigError, DataError

Loader = Callable[[DatasetSchema, int], RawData]

# Option name -> loader; the same names as experiments.config.datasets.DATASET_SCHEMAS.
DATASETS: dict[str, Loader] = {}


@dataclass(frozen=True)
class DatasetInfo:
    """One registered option, for the listing: its name, loader, schema and one-line summary."""

    name: str
    loader: Loader
    schema: type[DatasetSchema]

    @property
    def summary(self) -> str:
        doc = (self.schema.__doc__ if self.schema is not OpenSchema else None) or self.loader.__doc__ or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        return re.sub(r"^``[^`]+``: ", "", first)


def register_dataset(name: str, *, schema: type[DatasetSchema] | None = None):
    """Decorator: register ``loader(opts, seed) -> RawData`` as ``dataset.name=<name>``.

    Args:
        name: the option's name (``dataset=<name>`` with a ``conf/dataset/<name>.yaml``, or ``dataset.name=<name>``).
        schema: a frozen dataclass subclass of :class:`~experiments.config.datasets.DatasetSchema` naming the
            option's keys; ``None``: the base keys, and any others arrive in ``opts.options``.
    """

    def deco(loader: Loader) -> Loader:
        existing = DATASETS.get(name)
        if existing is not None and existing is not loader:
            raise ConfigError(
                f"a dataset loader named {name!r} is already registered ({existing.__module__})",
                path="dataset.name",
                value=name,
                fix="register your loader under another name",
            )
        register_dataset_schema(name, schema or DATASET_SCHEMAS.get(name) or OpenSchema)
        DATASETS[name] = loader
        return loader

    return deco


def registered() -> list[DatasetInfo]:
    """Every registered option, sorted by name."""
    return [DatasetInfo(n, DATASETS[n], DATASET_SCHEMAS[n]) for n in sorted(DATASETS)]


def loader_for(opts: DatasetSchema) -> Loader:
    """The loader of ``opts``: its ``_target_`` function, or the one registered under its name."""
    target = getattr(opts, "loader", None)  # the YAML's _target_
    if target:
        module, _, attr = str(target).rpartition(".")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except Exception as exc:
            raise ConfigError(
                f"cannot import the loader ({type(exc).__name__}: {exc})",
                path="dataset._target_",
                value=target,
                fix="name an importable function, e.g. my_pkg.data.load_table (its module on PYTHONPATH)",
            ) from None
        return fn
    try:
        return DATASETS[opts.name]
    except KeyError:
        raise ConfigError(
            "no loader is registered under this name",
            path="dataset.name",
            value=opts.name,
            fix="list the module that registers it under registry.modules, or add _target_ to the dataset YAML",
        ) from None


def run_loader(opts: DatasetSchema, seed: int) -> RawData:
    """Call the option's loader and hold its answer to the contract (tuples become :class:`RawData`)."""
    raw = loader_for(opts)(opts, seed)
    if isinstance(raw, tuple) and len(raw) == 2:
        x, y = np.asarray(raw[0]), np.asarray(raw[1])
        classes = 1 if np.issubdtype(y.dtype, np.floating) else int(y.max()) + 1 if len(y) else 0
        raw = RawData(x=x, y=y if np.issubdtype(y.dtype, np.floating) else y.astype(np.int64), num_classes=classes)
    if not isinstance(raw, RawData):
        raise DataError(
            f"the loader of dataset {opts.name!r} returned {type(raw).__name__}, not RawData or (x, y)",
            path="dataset.name",
            value=opts.name,
            fix="return experiments.data.RawData(x=..., y=..., num_classes=...) from the loader",
        )
    if len(raw.x) != len(raw.y) or len(raw.y) == 0:
        raise DataError(
            f"the loader returned {len(raw.x)} samples and {len(raw.y)} labels",
            path="dataset.name",
            value=opts.name,
            fix="return as many labels as samples, at least one",
        )
    if "sha256" not in raw.origin and raw.stream is None:
        arrays = [raw.x, raw.y, *(raw.test or ())]
        raw.origin = {
            "source": raw.origin.get("source", f"loader {opts.name}"),
            **raw.origin,
            "sha256": sha256_arrays(*arrays),
        }
    return raw
