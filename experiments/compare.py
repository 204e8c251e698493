"""``python -m experiments.compare EXPERIMENT [...]``: the statistical comparison of a sweep's runs.

A command-line entry only; the code is :mod:`experiments.analysis`.
"""

import sys

from experiments.process import configure_process

if __name__ == "__main__":
    configure_process()
    from experiments.analysis.compare import main

    sys.exit(main())
