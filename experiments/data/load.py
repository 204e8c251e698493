"""From a ``dataset`` config node to seeded, stratified splits: the built-in loaders, registered by name.

The keys, types and ranges of every option are the config schema's
(:mod:`experiments.config.datasets`); the registry (:mod:`.registry`) maps each option's ``name`` (or its
``_target_``) to the function that reads its data; user modules add their own the same way.
"""

from __future__ import annotations

import numbers
from typing import Any

from experiments.config.datasets import DatasetSchema, dataset_config, validate_dataset
from experiments.data.arrays import load_arrays
from experiments.data.digits import load_digits
from experiments.data.fashion_mnist import load_fashion_mnist
from experiments.data.image_folder import load_image_folder
from experiments.data.mnist import load_mnist
from experiments.data.mnist_sample import load_mnist_sample
from experiments.data.registry import DATASETS, register_dataset, run_loader  # noqa: F401  (DATASETS: re-exported)
from experiments.data.splits import DataSplits, make_splits
from experiments.data.synthetic import load_synthetic
from experiments.data.table import load_table
from experiments.errors import ConfigError

for _name, _loader in (
    ("mnist_sample", load_mnist_sample),
    ("mnist", load_mnist),
    ("digits", load_digits),
    ("synthetic", load_synthetic),
    ("fashion_mnist", load_fashion_mnist),
    ("arrays", load_arrays),
    ("table", load_table),
    ("image_folder", load_image_folder),
):
    register_dataset(_name)(_loader)


def validate_config(cfg) -> dict:
    """Check the ``dataset`` node and return it as a plain dict with defaults.

    The schema's :func:`~experiments.config.datasets.validate_dataset`.

    Raises:
        ConfigError: with ``path="dataset.<key>"`` and a fix for the first problem found.
    """
    return validate_dataset(cfg)


def load_dataset(cfg: DatasetSchema | Any, seed: int) -> DataSplits:
    """Load the dataset that ``cfg`` names and split it, stratified and seeded.

    Args:
        cfg: the job's typed ``dataset`` (``JobConfig.dataset``), or a
            ``dataset`` node (``DictConfig`` or ``dict``, checked here) with ``name``, ``limit``,
            ``val_fraction``, ``test_fraction`` and the option's own keys (see ``conf/dataset/*.yaml``).
        seed: drives the subsample, the splits and synthetic data; the same
            seed gives identical arrays.

    Returns:
        The :class:`DataSplits`.

    Raises:
        ConfigError: a key is unknown or has a bad value (``dataset.<key>``).
        DataError: the data cannot be read (missing or corrupt file).
    """
    opts = dataset_config(cfg)
    seed = _check_seed(seed)
    raw = run_loader(opts, seed)
    return make_splits(raw, opts, seed)


def _check_seed(seed) -> int:
    """Return ``seed`` folded into ``0..2**32-1`` (what NumPy and sklearn accept).

    Args:
        seed: any integer.
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ConfigError(
            "the seed must be an integer",
            path="seed",
            value=seed,
            fix="set seed to an integer such as 0",
        )
    return int(seed) % 2**32
