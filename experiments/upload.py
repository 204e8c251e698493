"""``python -m experiments.upload <job output dir>``: finish a run whose tracking server went away.

A command-line entry only; the code is :mod:`experiments.tracking.upload`.
"""

import sys

from experiments.tracking.upload import main

if __name__ == "__main__":
    sys.exit(main())
