"""SHA-256 digests of what a loader read: whole arrays or whole files, never a sample of them.

MLflow's own NumPy digest hashes only the first 10,000 elements, so two datasets can share it; these digests are
what ``data.sha256`` and the MLflow dataset inputs carry.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


def sha256_arrays(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of each array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.dtype.kind in "OUS":  # strings or objects: hash their text
            for v in a.reshape(-1):
                h.update(str(v).encode() + b"\0")
        else:
            h.update(memoryview(a.reshape(-1).view(np.uint8)))
    return h.hexdigest()


def sha256_file(path: str | Path, h=None) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (or fed into ``h`` and its hex digest returned)."""
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
