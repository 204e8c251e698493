"""``python -m experiments.upload <job output dir>``: finish a run whose tracking server went away.

A command-line entry only; the code is :mod:`experiments.tracking.upload`.
"""

import sys

from experiments.process import configure_process

if __name__ == "__main__":
    configure_process()
    from experiments.tracking.upload import main

    sys.exit(main())
