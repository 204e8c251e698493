"""``python -m experiments.doctor``: close FAILED the runs left RUNNING by a process that died.

A command-line entry only; the code is :mod:`experiments.tracking.doctor`.
"""

import sys

from experiments.process import configure_process

if __name__ == "__main__":
    configure_process()
    from experiments.tracking.doctor import main

    sys.exit(main())
