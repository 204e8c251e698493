"""``python -m experiments.schema [--modules ...] [--out PATH]``: the JSON Schema of the model YAML files.

A command-line entry only; the code is :mod:`experiments.models.json_schema`.
"""

import sys

from experiments.process import configure_process

if __name__ == "__main__":
    configure_process()
    from experiments.models.json_schema import main

    sys.exit(main())
