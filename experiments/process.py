"""Process-wide settings, made in one place at process start.

Called first thing by ``runner.py`` and the command entries (``python -m
experiments.upload``, ``python -m experiments.compare``), before TensorFlow
or MLflow are imported; launcher workers (joblib/loky, Ray) started from that
process inherit them.  No other module of the project sets environment
variables or other global state at import time.

A quiet start: TensorFlow's C++ start-up lines (absl's "All log messages
before absl::InitializeLog()", oneDNN, cudart_stub, cpu_feature_guard, the
cuInit failure on a machine without a GPU) are written straight to file
descriptor 2 before any log level applies (``TF_CPP_MIN_LOG_LEVEL`` does not
silence them, measured). :func:`configure_process` therefore installs an
import hook: when ``tensorflow`` is first imported (late, after the config
pre-check, wherever that import happens), fd 2 goes to a temporary file for
the import and the first device listing, then comes back, and every line of
that window that is not one of :data:`NOISE` is written out again, in order.
Only that window is filtered: errors later in the run are never touched, and
nothing is buffered in a thread that an ``os._exit`` could cut short.
``LAYERLAB_DEBUG=1`` turns the filter off.

Library INFO lines are off too unless ``LAYERLAB_DEBUG=1``: MLflow's (its
``MLFLOW_LOGGING_LEVEL``, set here) and, in a sweep, the launchers' per-job
lines (:func:`quiet_launch_lines`, called when the sweep starts).

This is also the one place that reads ``LAYERLAB_PROGRESS`` (:func:`plain_progress`)
and ``LAYERLAB_DEBUG`` (:func:`debug_enabled`, used by the CLI, the compare
command and the launcher plugin) and the one
place that writes the environment (:func:`configure_process`,
:func:`set_worker_threads` in a launcher's spawned worker).
"""

import atexit
import gc
import importlib.machinery
import logging
import os
import re
import sys
import tempfile

PROCESS_ENV = {
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the useful lines.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    # MLflow's HTTP client retries 7 times with exponential back-off (minutes) by default: a dead
    # server would freeze each logging call. Fail fast; experiments.tracking retries itself.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

# Start-up lines a user cannot act on (measured with tensorflow-cpu 2.21 on a CPU machine; the GPU build's
# factory-registration lines too). Anything else written during the import is shown.
NOISE = re.compile(
    "|".join(
        [
            r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
            r"^[IWE]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_executor|cuda_diagnostics"
            r"|cuda_dnn|cuda_fft|cuda_blas|computation_placer|gpu_device|env|tf_trt)\.cc:\d+\]",
            r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.",
            r"^TF-TRT Warning: Could not find TensorRT",
        ]
    )
)


# The launchers' per-job INFO lines ("Launching 4 jobs locally", "#0 : seed=0 ..."): the sweep's progress
# display names every job instead (experiments/sweeps/progress/display.py). Their warnings still show.
LAUNCH_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher",
    "hydra_plugins.hydra_ray_launcher",
    "hydra_plugins.layerlab_launcher",
)


TRUE_WORDS = ("1", "true", "yes", "on")


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true word (1, true, yes, on; any case).

    The one meaning of a ``LAYERLAB_*`` switch: ``0``, ``false``, empty or unset is off.
    """
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS


def debug_enabled() -> bool:
    """``LAYERLAB_DEBUG=1``: full tracebacks, TensorFlow's start-up lines; ``0`` or unset is off."""
    return env_flag("LAYERLAB_DEBUG")


def plain_progress() -> bool:
    """``LAYERLAB_PROGRESS=plain``: a sweep prints plain lines on a terminal too, no live display."""
    return os.environ.get("LAYERLAB_PROGRESS") == "plain"


def set_worker_threads(threads: int) -> None:
    """In a launcher's freshly spawned worker, before TensorFlow loads: its share of the CPU threads.

    The environment written here is the worker's own; a value the user set wins.
    """
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")


def use_keras_backend(name: str) -> None:
    """Before Keras is imported: the backend it will load (``tensorflow``, ``jax``, ``torch``; Keras reads
    ``KERAS_BACKEND`` once, at its import). Inherited by the launcher workers this process starts afterwards."""
    os.environ["KERAS_BACKEND"] = name


def configure_process() -> None:
    """Process-wide defaults, set once at start (a variable the user set wins).

    Set before TensorFlow and MLflow are imported, and inherited by launcher
    workers (joblib/loky, Ray) started from this process.
    """
    for key, value in PROCESS_ENV.items():
        os.environ.setdefault(key, value)
    if not debug_enabled():
        # MLflow's INFO lines ("Creating initial MLflow database tables...") are for its developers; read
        # when mlflow is imported, so set before. Its warnings and errors still show.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if not debug_enabled():
        # JAX's INFO line on every CPU-only start ("Unable to initialize backend 'tpu'") is not for the user.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    if not debug_enabled() and "tensorflow" not in sys.modules:
        if not any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
            sys.meta_path.insert(0, _QuietTensorFlow())
    tf_logger = logging.getLogger("tensorflow")  # the logger TensorFlow writes to, once it is imported
    if not debug_enabled() and not any(isinstance(f, _ExpectedRetracing) for f in tf_logger.filters):
        tf_logger.addFilter(_ExpectedRetracing())


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls to <function _Steps.__init__.<locals>.run> triggered
    tf.function retracing" warning: every job of a sweep's process (every fused group) has its own model, so
    its resident steps (``experiments/training/resident.py``) are traced once per job, by design. Any other
    function's retracing warning still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("triggered tf.function retracing" in text and "_Steps.__init__.<locals>.run" in text)


def quiet_launch_lines() -> None:
    """In a sweep's own process, when it starts: the launchers' per-job INFO lines off (``LAYERLAB_DEBUG=1``: on)."""
    if debug_enabled():
        return
    for name in LAUNCH_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def freeze_imported_heap() -> None:
    """Once per process, after the libraries are imported: move their objects out of the garbage collector's way.

    TensorFlow, Keras and MLflow leave hundreds of thousands of long-lived
    objects; every full collection walks them all (``keras.backend.clear_session()``
    at the start of each job collects). ``gc.freeze()`` moves what exists now
    to the permanent generation, so a collection walks only what the jobs
    create; the garbage of one job is still freed before the next. No
    collection first: right after the imports it found no unreachable objects,
    so freezing leaks nothing (figures: BENCHMARKS.md, section 2b).
    """
    global _HEAP_FROZEN
    if _HEAP_FROZEN:
        return
    _HEAP_FROZEN = True
    gc.freeze()


_HEAP_FROZEN = False


def teardown_may_be_skipped() -> bool:
    """False under a profiler or tracer (cProfile, coverage write their results at normal exit) or with
    ``LAYERLAB_NO_FAST_EXIT=1``; the one rule of :func:`exit_without_teardown_at_exit` and ``cli.fast_exit``."""
    return sys.getprofile() is None and sys.gettrace() is None and not env_flag("LAYERLAB_NO_FAST_EXIT")


def exit_without_teardown_at_exit() -> None:
    """In a launcher's worker process: when it is told to exit, skip the interpreter's teardown of TensorFlow.

    A joblib worker that ran jobs exits only when its sweep is over; its
    normal exit tears TensorFlow down while the sweep's parent waits for it
    (BENCHMARKS.md, section 2b). Every job has already ended its MLflow run
    and flushed its metrics by then, so the worker leaves with ``os._exit``
    from an ``atexit`` handler registered after TensorFlow's own (handlers run
    last-in first-out). Not under a profiler or tracer, nor with
    ``LAYERLAB_NO_FAST_EXIT`` set.
    """
    if not teardown_may_be_skipped():
        return

    def _leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    atexit.register(_leave)


def replay(text: str) -> str:
    """The lines of ``text`` that are not start-up noise."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.match(line))


class _QuietTensorFlow:
    """A ``sys.meta_path`` finder for ``tensorflow`` only: its loader runs with fd 2 filtered."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the first import is the one that prints
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec(module):
            with _FilteredStderr():
                exec_module(module)
                module.config.list_physical_devices()  # the device probe (cuInit) prints now, not mid-run

        spec.loader.exec_module = quiet_exec
        return spec


class _FilteredStderr:
    """fd 2 into a temporary file for the block; afterwards its non-noise lines go to the real fd 2."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.file = tempfile.TemporaryFile()
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self.saved, 2)
            os.close(self.saved)
        self.file.seek(0)
        kept = replay(self.file.read().decode("utf-8", "replace"))
        self.file.close()
        if kept:
            os.write(2, kept.encode("utf-8"))
        return False
