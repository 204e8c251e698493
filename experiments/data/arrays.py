"""The ``arrays`` option: NumPy arrays from one ``.npz`` (``x_train``, ``y_train``, optionally ``x_test``,
``y_test``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from experiments.data.provenance import sha256_file
from experiments.data.raw import RawData
from experiments.data.targets import labels_and_task, required
from experiments.errors import DataError


def load_arrays(opts, seed: int) -> RawData:
    """The arrays of ``dataset.path``; labels are classes (ints or strings) or a float regression target.

    Args:
        opts: ``path``, ``x_key``, ``y_key``, ``x_test_key``, ``y_test_key``, ``task``.
        seed: unused (the data are fixed).
    """
    path = Path(str(required(opts, "path", "data.npz"))).expanduser()
    if not path.is_file():
        raise DataError(
            f"no such file: {path}",
            path="dataset.path",
            value=str(opts.path),
            fix="point dataset.path at an existing .npz file (np.savez(path, x_train=..., y_train=...))",
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"cannot read {path} as a .npz file ({type(exc).__name__}: {exc})",
            path="dataset.path",
            value=str(opts.path),
            fix="write the file with numpy.savez or numpy.savez_compressed",
        ) from None
    for role, key in (("dataset.x_key", opts.x_key), ("dataset.y_key", opts.y_key)):
        if key not in arrays:
            raise DataError(
                f"{path.name} has no array {key!r} (it has {', '.join(sorted(arrays)) or 'none'})",
                path=role,
                value=key,
                fix=f"set {role} to one of the file's keys",
            )
    x, y = arrays[opts.x_key], arrays[opts.y_key]
    test = None
    tx, ty = opts.x_test_key, opts.y_test_key
    if tx and ty and tx in arrays and ty in arrays:
        test = (arrays[tx], arrays[ty])
    elif (tx in arrays) != (ty in arrays) and tx and ty:
        missing = ty if tx in arrays else tx
        raise DataError(
            f"{path.name} has only one of the test arrays ({missing!r} is missing)",
            path="dataset.x_test_key" if missing == tx else "dataset.y_test_key",
            value=missing,
            fix="add both test arrays to the file, or set dataset.x_test_key=null dataset.y_test_key=null "
            "to split a test set off the training arrays",
        )
    for name, (xa, ya) in {"train": (x, y), **({"test": test} if test else {})}.items():
        if len(xa) != len(ya) or xa.ndim < 2 and xa.ndim != 1:
            raise DataError(
                f"the {name} arrays hold {len(xa)} samples and {len(ya)} labels",
                path="dataset.y_key",
                value=opts.y_key,
                fix="store one label per sample",
            )
        if xa.dtype.kind not in "biuf":
            raise DataError(
                f"the {name} samples have dtype {xa.dtype}, not numbers",
                path="dataset.x_key",
                value=opts.x_key,
                fix="store numeric samples (uint8 images or float features)",
            )
        if xa.dtype.kind == "f" and not np.isfinite(xa).all():
            raise DataError(
                f"the {name} samples contain NaN or infinite values",
                path="dataset.x_key",
                value=opts.x_key,
                fix="fill or drop the missing values before saving the .npz",
            )
    if x.ndim == 1:  # one feature per sample
        x = x[:, None]
        test = (test[0][:, None], test[1]) if test else None
    labels = [y] + ([test[1]] if test else [])
    encoded, task, classes, names = labels_and_task(labels, opts.task, "dataset.y_key")
    if test:
        test = (test[0], encoded[1])
    origin = {"source": str(path), "sha256": sha256_file(path)}
    return RawData(x=x, y=encoded[0], num_classes=classes, test=test, origin=origin, task=task, class_names=names)
