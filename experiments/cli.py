"""Glue between Hydra and a job: short errors, exit codes, and sweep finalisation.

* In a single run, a user error prints one paragraph and exits 2.
* In a multirun, the failing job raises a short :class:`JobFailed` so that
  Hydra goes on with the other jobs and exits 1 at the end.
* Whatever happens, a sweep's parent run is finalised (Hydra skips
  ``on_multirun_end`` when a job failed).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from experiments.backends import loaded_backend, require_installed
from experiments.config.precheck import check
from experiments.config.schema import requested_backend, run_mode, validate
from experiments.errors import LayerlabError
from experiments.process import configure_process, debug_enabled, teardown_may_be_skipped, use_keras_backend

# experiments.job and experiments.sweeps are imported inside the functions below, after the
# pre-check: a typo in an override is then reported before TensorFlow loads (seconds; BENCHMARKS.md section 1).


class JobFailed(RuntimeError):
    """A sweep job's user error, re-raised without its traceback for Hydra."""


def _is_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().mode).endswith("MULTIRUN")
    except ValueError:  # HydraConfig not set: not inside a Hydra run
        return False


def run_from_hydra(cfg):
    """The Hydra task function: run one job and translate its failures."""
    configure_process()  # a no-op in runner.py's process; a launcher's spawned worker gets the quiet TF import too
    debug = debug_enabled()
    try:
        # The typed config first: the schema needs no TensorFlow, so a wrong value (training.epochs=-1) is one
        # paragraph before TensorFlow is imported, not after it. A dry run validates inside, to record a failure.
        job = None if run_mode(cfg) == "dry_run" else validate(cfg)
        backend = job.backend if job is not None else requested_backend(cfg)
        loaded = loaded_backend()
        if loaded is None:  # Keras not imported yet: it will load this job's backend
            require_installed(backend)
            use_keras_backend(backend)
        elif loaded != backend:  # a reused process (basic launcher, joblib/pool worker) on another backend
            require_installed(backend)
            return run_on_backend(cfg, backend)
        from experiments.job.entry import run_job

        result = run_job(cfg, job)
    except LayerlabError as exc:
        if debug:
            raise
        print(f"layerlab: error: {exc}", file=sys.stderr, flush=True)
        if _is_multirun():
            raise JobFailed(str(exc)) from None
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(
            "layerlab: interrupted; the MLflow run is marked KILLED and the last epoch's checkpoint is kept",
            file=sys.stderr,
            flush=True,
        )
        if _is_multirun():
            raise
        sys.exit(130)
    return result.status if result else None


def run_on_backend(cfg, backend: str):
    """Run this job in a fresh Python process on ``backend``: this process's Keras is on another one.

    The child gets the composed config and Hydra's state (the job's output folder, sweep folder and number, so
    its run joins the sweep's parent) and calls :func:`run_from_hydra` there; its outcome comes back as this
    job's: a status, a user error (:class:`JobFailed` / exit code), an interruption or a crash.
    """
    from hydra.core.singleton import Singleton
    from joblib.externals import cloudpickle

    with tempfile.TemporaryDirectory(prefix="layerlab-backend-") as tmp:
        job_file, result_file = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl"
        job_file.write_bytes(cloudpickle.dumps((cfg, Singleton.get_state(), backend)))
        env = dict(os.environ, KERAS_BACKEND=backend)
        code = subprocess.call([sys.executable, "-m", "experiments.cli", str(job_file), str(result_file)], env=env)
        kind, value = pickle.loads(result_file.read_bytes()) if result_file.exists() else ("crash", code)
    if kind == "status":
        return value
    if kind == "failed":
        raise JobFailed(value)
    if kind == "exit":
        sys.exit(value)
    if kind == "interrupted":
        raise KeyboardInterrupt(value)
    raise RuntimeError(f"the job's {backend} process ended without a result (exit {value})")


def _fresh_job(job_file: str, result_file: str) -> None:
    """The child of :func:`run_on_backend`: one job on the backend ``KERAS_BACKEND`` names."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals
    from joblib.externals import cloudpickle

    cfg, state, backend = cloudpickle.loads(Path(job_file).read_bytes())
    setup_globals()
    Singleton.set_state(state)
    use_keras_backend(backend)
    try:
        result = ("status", run_from_hydra(cfg))
    except JobFailed as exc:
        result = ("failed", str(exc))
    except SystemExit as exc:
        result = ("exit", exc.code)
    except KeyboardInterrupt as exc:
        result = ("interrupted", str(exc))
    Path(result_file).write_bytes(pickle.dumps(result))
    fast_exit(0)


def command_line_backend(argv: list[str]) -> str | None:
    """The one backend a command line asks for (``backend=jax``), None when it sweeps backends or names none."""
    from experiments.config.overrides import parse_override
    from experiments.config.schema import BACKENDS

    for text in argv:
        parsed = parse_override(text) if "=" in text else None
        if parsed is not None and parsed.key == "backend" and not parsed.is_sweep and parsed.value in BACKENDS:
            return parsed.value
    return None


def guarded(main, precheck: bool = False) -> None:
    """Call the Hydra ``main`` and finalise any sweep it started, however it ends.

    Args:
        main: the ``@hydra.main`` function.
        precheck: first check the config files and ``group=option`` overrides
            (:mod:`experiments.config.precheck`) for a short message instead of Hydra's.
    """
    if precheck:
        try:
            check(sys.argv[1:])
        except LayerlabError as exc:
            print(f"layerlab: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(exc.exit_code)
    backend = command_line_backend(sys.argv[1:])
    if backend is not None:  # launcher workers started from this process import Keras on it
        use_keras_backend(backend)
    from experiments.sweeps import callback as sweep

    def _term(signum, frame):  # between jobs of a sweep: end like Ctrl-C, so the parent run is closed KILLED
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _term)
    code = 0
    try:
        main()
    except KeyboardInterrupt:
        sweep.finalize_active(interrupted=True)
        code = 130
    except SystemExit as exc:
        sweep.finalize_active(interrupted=False, failed=exc.code not in (0, None))
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        sweep.finalize_active(interrupted=False)
    fast_exit(code, allowed=sweep.workers_released())


def fast_exit(code: int, allowed: bool = True) -> None:
    """Exit without the interpreter's slow teardown of TensorFlow (its cost: BENCHMARKS.md, section 2b).

    Safe only once everything is closed: the MLflow run is ended and the metric
    sink flushed by the job itself. After a sweep only when no launcher worker
    outlives the process (:func:`experiments.sweeps.callback.workers_released`):
    a parent that only waited for joblib workers still spends a second or so
    in the teardown of MLflow, pandas and SciPy (BENCHMARKS.md, section 2b).
    """
    if not allowed or not teardown_may_be_skipped():
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # the fresh process of run_on_backend
    configure_process()
    _fresh_job(*sys.argv[1:3])
