"""The ``mnist`` option: the full MNIST from ``dataset.path``, the Keras cache, or a download.

The file is the ``mnist.npz`` of ``keras.datasets.mnist`` (keys x_train,
y_train, x_test, y_test): 60,000 training and the official 10,000 test
digits, so ``test_fraction`` is ignored.  ``LAYERLAB_OFFLINE=1`` skips the
download; without any file the run stops with a hint to use ``mnist_sample``.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from experiments.data.download import fetch
from experiments.data.raw import RawData, to_uint8
from experiments.errors import DataError

# Where Keras downloads MNIST from, and the SHA-256 it checks (same as
# ``keras.datasets.mnist.load_data``).
MNIST_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")

# Seconds connecting and each read of the download may block: without a
# timeout a half-open network can hang the job forever.
DOWNLOAD_TIMEOUT_S = 30.0


def load_mnist(opts: dict, seed: int) -> RawData:
    """The full MNIST: 60,000 train + the official 10,000 test digits.

    Args:
        opts: the dataset options (``path``).
        seed: unused (the data are fixed).
    """
    file, from_path = find_mnist(opts.path)
    (x, y), test = read_mnist_npz(file, from_path)
    return RawData(x=x, y=y, num_classes=10, test=test)


def _offline() -> bool:
    """True when ``LAYERLAB_OFFLINE`` asks not to download anything."""
    return os.environ.get("LAYERLAB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def keras_home() -> Path:
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


def find_mnist(path) -> tuple[Path, bool]:
    """Find ``mnist.npz``: ``dataset.path``, the Keras cache, then a download into that cache.

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
    cached = keras_home() / "datasets" / "mnist.npz"
    if cached.is_file():
        return cached, False
    if _offline():
        why = "download skipped because LAYERLAB_OFFLINE is set"
    else:
        try:
            return fetch(MNIST_ORIGIN, cached, MNIST_SHA256, timeout=DOWNLOAD_TIMEOUT_S), False
        except Exception as exc:  # any network/IO/hash failure: report it, don't crash
            why = f"download from {MNIST_ORIGIN} failed ({type(exc).__name__}: {exc})"
    raise DataError(
        f"the full MNIST dataset is not available: dataset.path is not set, {cached} does not exist "
        f"(Keras cache, $KERAS_HOME/datasets) and the {why}",
        path="dataset.path",
        value=None,
        fix=fix,
    )


def read_mnist_npz(file: Path, from_path: bool) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
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
    return (to_uint8(x_tr), y_tr.astype(np.int64)), (to_uint8(x_te), y_te.astype(np.int64))
