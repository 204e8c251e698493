"""The ``image_folder`` option: images in ``path/<class>/*`` (or ``path/train|test/<class>/*``), streamed from disk.

Labels come from the class folders' names (sorted, as ``keras.utils.image_dataset_from_directory`` does); only the
file paths are held in memory, split stratified and seeded like any dataset, and :class:`ImageStream` reads,
decodes and resizes each batch through ``tf.data``, so a folder larger than memory trains with bounded memory.
Before training every file is read once: for the SHA-256 of the folder (``data.sha256``) and, with
``dataset.check_images``, a full decode, so an unreadable or truncated file stops the run before anything is
logged instead of in the middle of an epoch.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.data.raw import RawData
from experiments.data.targets import required
from experiments.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class ImageStream:
    """Reads image files through ``tf.data``: decode, resize to ``image_size``, uint8 ``(h, w, channels)``."""

    image_size: tuple[int, int]
    channels: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)

    def _decode_one(self, path):
        import tensorflow as tf

        img = tf.io.decode_image(tf.io.read_file(path), channels=self.channels, expand_animations=False)
        img = tf.image.resize(img, self.image_size)  # bilinear, float32; a no-op size keeps the pixels
        img = tf.cast(tf.clip_by_value(tf.round(img), 0.0, 255.0), tf.uint8)
        return tf.ensure_shape(img, self.input_shape)

    def dataset(self, paths, labels, batch_size: int, *, shuffle: bool, seed: int):
        """A batched, prefetched dataset of ``(uint8 images, labels)``; only the paths are shuffled in memory."""
        import tensorflow as tf

        n = len(paths)
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=str), np.asarray(labels)))
        if shuffle:
            ds = ds.shuffle(n, seed=int(seed) % 2**31, reshuffle_each_iteration=True)
        # Parallel decoding keeps the order (deterministic by default): seeded runs see the same batches.
        ds = ds.map(lambda p, y: (self._decode_one(p), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

    def decode(self, paths) -> np.ndarray:
        """The images of ``paths`` in memory (for plots and a model's input example)."""
        ds = self.dataset(paths, np.zeros(len(paths), np.int64), 256, shuffle=False, seed=0)
        parts = [x.numpy() for x, _ in ds]
        return np.concatenate(parts) if parts else np.zeros((0, *self.input_shape), np.uint8)


def _class_dirs(root: Path, opts) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(
            f"{root} holds no class folders",
            path="dataset.path",
            value=str(opts.path),
            fix="put each class's images in a sub-folder named after the class: "
            f"{root}/<class>/*.png (or train/<class> and test/<class>)",
        )
    if len(dirs) < 2:
        raise DataError(
            f"{root} holds a single class folder ({dirs[0].name}); a classifier needs two or more",
            path="dataset.path",
            value=str(opts.path),
            fix="add a folder per class, at least two",
        )
    return dirs


def _files(class_dir: Path, opts) -> list[str]:
    found = sorted(
        str(Path(d) / f)
        for d, _, names in os.walk(class_dir)
        for f in names
        if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
    )
    if not found:
        raise DataError(
            f"the class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})",
            path="dataset.path",
            value=str(opts.path),
            fix=f"add images to {class_dir.name}/ or remove that folder",
        )
    return found


def _scan(root: Path, classes: list[str], opts) -> tuple[np.ndarray, np.ndarray]:
    paths, labels = [], []
    for i, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(
                f"{root} has no folder for the class {name!r} found beside it",
                path="dataset.path",
                value=str(opts.path),
                fix="give train/ and test/ the same class folders",
            )
        files = _files(folder, opts)
        paths += files
        labels += [i] * len(files)
    return np.asarray(paths), np.asarray(labels, dtype=np.int64)


def _digest_and_check(root: Path, paths: np.ndarray, check: bool, opts) -> str:
    """SHA-256 over each file's relative path and bytes; with ``check``, decode each fully (PIL)."""
    from PIL import Image, UnidentifiedImageError

    h = hashlib.sha256()
    for p in paths:
        data = Path(p).read_bytes()
        h.update(os.path.relpath(p, root).encode() + b"\0")
        h.update(data)
        if check:
            try:
                with Image.open(io.BytesIO(data)) as img:
                    img.load()
            except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
                raise DataError(
                    f"the image file {p} cannot be decoded ({type(exc).__name__}: {exc})",
                    path="dataset.path",
                    value=str(opts.path),
                    fix="delete or replace that file (it is unreadable or truncated)",
                ) from None
    return h.hexdigest()


def load_image_folder(opts, seed: int) -> RawData:
    """File paths and folder labels; the images themselves are read batch by batch while training.

    Args:
        opts: ``path``, ``image_size``, ``color_mode``, ``check_images``, ``task``.
        seed: unused (the splits are seeded afterwards).
    """
    root = Path(str(required(opts, "path", "~/images"))).expanduser()
    if not root.is_dir():
        raise DataError(
            f"no such folder: {root}",
            path="dataset.path",
            value=str(opts.path),
            fix="point dataset.path at a folder with one sub-folder of images per class",
        )
    train_dir, test_dir = root / "train", root / "test"
    split_layout = train_dir.is_dir() and test_dir.is_dir()
    base = train_dir if split_layout else root
    classes = [d.name for d in _class_dirs(base, opts)]
    x, y = _scan(base, classes, opts)
    test = _scan(test_dir, classes, opts) if split_layout else None
    every = np.concatenate([x, test[0]]) if test else x
    digest = _digest_and_check(root, every, opts.check_images, opts)
    if opts.task == "binary" and len(classes) != 2:
        raise DataError(
            f"dataset.task=binary needs two class folders, {root} has {len(classes)}",
            path="dataset.task",
            value=opts.task,
            fix="set dataset.task=auto or classification",
        )
    channels = 1 if opts.color_mode == "grayscale" else 3
    stream = ImageStream(image_size=(int(opts.image_size[0]), int(opts.image_size[1])), channels=channels)
    task = "binary" if len(classes) == 2 and opts.task != "classification" else "classification"
    origin = {"source": str(root), "sha256": digest, "files": int(len(every))}
    return RawData(
        x=x,
        y=y,
        num_classes=len(classes),
        test=test,
        origin=origin,
        task=task,
        class_names=tuple(classes),
        stream=stream,
    )
