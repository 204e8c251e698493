"""Run a script, then leave with ``os._exit`` instead of the interpreter's normal shutdown.

    python bench/fast_exit.py runner.py [overrides]

Used by ``bench.overhead`` to measure, without editing layerlab, what a fast
exit at the end of ``runner.py`` would save: a normal exit tears down every
loaded module (TensorFlow, MLflow, SQLAlchemy, pandas, matplotlib...), which
takes seconds. Output streams are flushed first; the job itself has already
ended its MLflow run and flushed its metrics when ``main`` returns.
"""

import logging
import os
import runpy
import sys

sys.argv = sys.argv[1:]
code = 0
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
