"""Tiny datasets written into tmp_path for the dataset tests: image folders, tables, .npz files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def image_folder(
    root: Path, classes=("cat", "dog"), per_class: int = 12, size: int = 8, split: bool = False, seed: int = 0
) -> Path:
    """``root/<class>/*.png`` (or ``root/train|test/<class>``): each class a different mean brightness, learnable."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    parts = [("train", per_class), ("test", max(2, per_class // 3))] if split else [("", per_class)]
    for part, n in parts:
        for k, name in enumerate(classes):
            folder = root / part / name if part else root / name
            folder.mkdir(parents=True, exist_ok=True)
            base = 40 + 170 * k / max(1, len(classes) - 1)
            for i in range(n):
                pixels = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.png")
    return root


def table(path: Path, n: int = 120, regression: bool = False, seed: int = 0) -> Path:
    """A CSV with two numeric columns, one text column and a string label (or a float target ``price``)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    size = rng.normal(100, 30, n)
    rooms = rng.integers(1, 6, n)
    color = rng.choice(["red", "green", "blue"], n)
    df = pd.DataFrame({"size": size, "rooms": rooms, "color": color})
    if regression:
        df["price"] = 2000.0 * size + 15000.0 * rooms + rng.normal(0, 5000, n) + 50000
    else:
        df["label"] = np.where(size + 10 * (color == "red") > 100, "big", "small")
    df.to_csv(path, index=False)
    return path


def npz(path: Path, n: int = 90, classes: int = 3, test: bool = True, seed: int = 0, **extra) -> Path:
    """``x_train``/``y_train`` (and ``x_test``/``y_test``) of 6x6 uint8 images, ``classes`` learnable classes."""
    rng = np.random.default_rng(seed)

    def make(m):
        y = np.arange(m) % classes
        x = np.clip(30 + 60 * y[:, None, None] + rng.normal(0, 10, (m, 6, 6)), 0, 255).astype(np.uint8)
        return x, y.astype(np.int64)

    x, y = make(n)
    arrays = {"x_train": x, "y_train": y}
    if test:
        arrays["x_test"], arrays["y_test"] = make(n // 3)
    np.savez(path, **{**arrays, **extra})
    return path
