"""The ``fashion_mnist`` option: Zalando's Fashion-MNIST, the official 60,000 + 10,000 split, checked by SHA-256.

Looked for in this order: ``dataset.path``; the Keras cache (``$KERAS_HOME/datasets/fashion-mnist/``, where
``keras.datasets.fashion_mnist.load_data()`` puts it); the Debian package's folder
``/usr/share/datasets/fashion-mnist/`` (``scripts/install_fashion_mnist.sh`` installs ``dataset-fashion-mnist``).
Each folder holds the four IDX files, gzipped or not.  Debian recompressed the ``.gz`` files, so the check is
the SHA-256 of the *uncompressed* files, the same from every source.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from experiments.data.mnist import keras_home
from experiments.data.raw import RawData
from experiments.errors import DataError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# SHA-256 of the uncompressed official IDX files.
FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def candidate_dirs(path) -> list[tuple[str, Path]]:
    """``(source, folder)`` in the order they are tried."""
    if path is not None:
        return [("path", Path(str(path)).expanduser())]
    return [("cache", keras_home() / "datasets" / "fashion-mnist"), ("debian", DEBIAN_DIR)]


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(data: bytes) -> np.ndarray:
    """An IDX file's array (magic: two zero bytes, the dtype code 0x08 = uint8, the rank, then the sizes)."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes")
    rank = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"IDX header says {dims} but the file holds {body.size} values")
    return body.reshape(dims)


def load_fashion_mnist(opts, seed: int) -> RawData:
    """60,000 training and the official 10,000 test images of 10 clothing classes (28x28 uint8).

    Args:
        opts: ``path`` (and the ``mnist`` keys: ``validation_set``, ``val_fraction``).
        seed: unused (the data are fixed).
    """
    tried = []
    for source, folder in candidate_dirs(opts.path):
        files = {stem: _find(folder, stem) for stem in FILES}
        if all(files.values()):
            return _load(files, source, opts)
        tried.append(str(folder))
    where = "dataset.path" if opts.path is not None else "dataset.path"
    raise DataError(
        f"the four Fashion-MNIST IDX files ({', '.join(FILES)}, .gz or not) are not in {' or '.join(tried)}",
        path=where,
        value=opts.path,
        fix="run scripts/install_fashion_mnist.sh (Debian's dataset-fashion-mnist), call "
        "keras.datasets.fashion_mnist.load_data() once, or set dataset.path to a folder with the files",
    )


def _load(files: dict[str, Path], source: str, opts) -> RawData:
    arrays, whole = {}, hashlib.sha256()
    for stem, expected in FILES.items():
        f = files[stem]
        try:
            data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest != expected:
                raise ValueError(f"SHA-256 {digest[:16]}... is not the official {expected[:16]}...")
            arrays[stem] = read_idx(data)
        except (OSError, EOFError, ValueError) as exc:
            raise DataError(
                f"{f} is not the official Fashion-MNIST file ({exc})",
                path="dataset.path",
                value=opts.path,
                fix="reinstall it (scripts/install_fashion_mnist.sh) or point dataset.path at an intact copy",
            ) from None
        whole.update(expected.encode())
    x, y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"].astype(np.int64)
    test = (arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    origin = {"source": f"{source}:{files['train-images-idx3-ubyte'].parent}", "sha256": whole.hexdigest()}
    return RawData(x=x, y=y, num_classes=10, test=test, origin=origin, task="classification", class_names=CLASS_NAMES)
