"""From a ``dataset`` config node to seeded, stratified splits: which loader reads each option.

The keys, types and ranges of every option are the config schema's
(:mod:`experiments.config.datasets`); this module only maps each option's
``name`` to the function that reads its data.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from experiments.config.datasets import DatasetSchema, dataset_config, validate_dataset
from experiments.data.digits import load_digits
from experiments.data.mnist import load_mnist
from experiments.data.mnist_sample import load_mnist_sample
from experiments.data.raw import RawData
from experiments.data.splits import DataSplits, make_splits
from experiments.data.synthetic import load_synthetic
from experiments.errors import ConfigError

# Option name -> ``(opts, seed) -> RawData`` (``opts``: the option's frozen schema instance); the same names as
# experiments.config.datasets.DATASET_SCHEMAS and conf/dataset/*.yaml.
DATASETS: dict[str, Callable[[DatasetSchema, int], RawData]] = {
    "mnist_sample": load_mnist_sample,
    "mnist": load_mnist,
    "digits": load_digits,
    "synthetic": load_synthetic,
}


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
    raw = DATASETS[opts.name](opts, seed)
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
