"""``python -m experiments.compare EXPERIMENT [...]``: the statistical comparison of a sweep's runs.

A command-line entry only; the code is :mod:`experiments.analysis`.
"""

import sys

from experiments.analysis.compare import main

if __name__ == "__main__":
    sys.exit(main())
