"""Runs closed while the sweep's next job trains: a job's outputs off the critical path (issue 37).

Closing a FINISHED run (a solo job's, or a fused group's replica's: params, config files, history, plots, the model,
the end of the run: BENCHMARKS.md, "Where the fused study's seconds go") needs its trained model
and data, nothing of the next job. In the process that launches a sweep's
batch (Hydra's basic launcher runs every job there),
:func:`experiments.launching.batch.launch_batch` opens :func:`overlap` around
the batch. While it is open, :func:`close_later` hands a close to one writer
thread and the job returns at once; the batch's end waits for every close, so
the sweep's summary, a rounds sweeper's next look and the process's exit see
closed runs. One thread, not one per run: closes are Python work, and the
next fit runs in TensorFlow's threads beside it. Anywhere else (a launcher's
worker process, a single run, an Optuna trial, a distributed strategy) a
close runs at once, as before.

A close that fails is reported when the batch ends, with the run it belongs
to (the sweep then exits non-zero, as a job whose close fails does).
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

_lock = threading.Lock()
_owner: int | None = None  # the pid whose batch is open: a forked worker inherits the module, not the batch
_writer: ThreadPoolExecutor | None = None
_pending: list[tuple[str, Future]] = []
_failed: list[str] = []  # one line per close that raised, reported when the batch ends


class ClosesFailed(Exception):
    """Closes that raised in the background; the message names each run and its error."""


def deferring() -> bool:
    """Whether a close handed to :func:`close_later` now runs in the background."""
    return _owner == os.getpid()


def run_label(run_id: str | None, seed: int) -> str:
    """How an error message names a run whose close failed: ``run 3f2a... (seed 2)``."""
    return f"run {run_id} (seed {seed})"


def close_later(what: str, close: Callable[[], object]) -> None:
    """Run ``close`` in the writer thread while a batch is open in this process, else now.

    Args:
        what: names the run for an error message (:func:`run_label`).
        close: closes the run; its exceptions are kept for :func:`wait_for_closes`.
    """
    global _writer
    if not deferring():
        close()
        return
    with _lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layerlab-close")
        _pending.append((what, _writer.submit(close)))


def wait_for_closes() -> None:
    """Wait for every close handed over so far (a job whose fit failed waits before closing its runs itself);
    the ones that raised are kept for the batch's end."""
    with _lock:
        pending = list(_pending)
        _pending.clear()
    for what, future in pending:
        exc = future.exception()  # waits
        if exc is not None:
            first = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
            with _lock:
                _failed.append(f"{what}: {first[0] if first else type(exc).__name__}")


def take_failures() -> list[str]:
    """The lines of the closes that raised since the last call (and forgets them)."""
    with _lock:
        failed = list(_failed)
        _failed.clear()
    return failed


@contextmanager
def overlap() -> Iterator[None]:
    """Closes handed over inside the block run in the background; every one has ended when the block ends.

    Raises :class:`ClosesFailed` when a close raised and the block itself did not (an exception of the block,
    Ctrl-C included, goes on as it is; the failed closes are then printed).
    """
    global _owner
    outer = deferring()  # a nested batch (a sweeper launching inside a batch) leaves the outer one in charge
    _owner = os.getpid()
    ok = False
    try:
        yield
        ok = True
    finally:
        if not outer:
            _owner = None
            wait_for_closes()
            failed = take_failures()
            if failed:
                text = (
                    f"layerlab: error: {len(failed)} run(s) trained, but writing their outputs (written while the "
                    f"next job trained) failed: {'; '.join(failed)}. Their metrics are logged; rerun these seeds "
                    "for their plots and model (python runner.py <the job's overrides> seed=<seed>)."
                )
                if ok:
                    raise ClosesFailed(text)
                print(text, flush=True)
