"""The ``digits`` option: scikit-learn's 1,797 bundled 8x8 handwritten digits."""

from __future__ import annotations

import numpy as np

from experiments.data.raw import RawData, to_uint8


def load_digits(opts: dict, seed: int) -> RawData:
    """scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255 uint8.

    The rescale lets the same rescale-by-255 model layer serve every dataset.

    Args:
        opts: the dataset options (unused: no keys of its own).
        seed: unused (the data are fixed).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = to_uint8(bunch.images * (255.0 / 16.0))
    return RawData(x=x, y=np.asarray(bunch.target, dtype=np.int64), num_classes=10, origin={"source": "scikit-learn"})
