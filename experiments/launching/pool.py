"""The worker processes of a layerlab-launcher sweep, from the sweep's start to its end.

The sweep callback starts them (:func:`warm_pool`) while the parent opens the store and the parent run:
each imports TensorFlow, Keras and MLflow meanwhile (seconds) instead of after it
(:mod:`experiments.launching.worker`).  The launcher (``hydra_plugins/layerlab_launcher``) takes
the workers each batch needs (:meth:`WorkerPool.take`) and gives them back when the batch is over, so
the next batch of the same sweep (rounds, an Optuna search) runs on processes that imported TensorFlow
already.  The callback closes the pool when the sweep ends, however it ends (:meth:`WorkerPool.close`).
The pool is held by the sweep's :class:`~experiments.sweeps.context.SweepContext`, never a module global.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterable

from experiments.config.launcher import LauncherSettings, threads_per_worker

STOP_WAIT_S = 10.0  # a worker told to stop finishes its job first (as Hydra's launchers do), then is terminated


class PoolWorker:
    """One spawned worker process and its pipe; ``job`` is the batch index it runs (None: idle)."""

    def __init__(self, ctx, threads: int):
        from experiments.launching import worker as pool_worker

        self.threads = threads
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=pool_worker.main, args=(child, threads), daemon=True)
        self.proc.start()
        child.close()
        self.job: int | None = None

    def setup(self, payload: bytes) -> None:
        """The batch's Hydra payload, before its first job (see :mod:`experiments.launching.worker`)."""
        try:
            self.conn.send(("setup", payload))
        except OSError:  # it died: the launcher sees its exit and replaces it
            pass

    def run(self, job: int, num: int, overrides: list) -> None:
        """Hand it job ``num`` of the sweep (index ``job`` of its batch)."""
        self.job = job
        try:
            self.conn.send(("job", num, overrides))
        except OSError:  # it died: the launcher sees its exit and reports the job lost
            pass

    def tell_stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):  # dead already, or its pipe closed
            pass


class WorkerPool:
    """The layerlab launcher's workers of one sweep (spawned processes; see the module docstring)."""

    def __init__(self):
        self.ctx = multiprocessing.get_context("spawn")
        self.idle: list[PoolWorker] = []
        self.busy: list[PoolWorker] = []  # taken by a batch that has not given them back
        self.retired: list[PoolWorker] = []  # told to stop, not waited for yet
        self.closed = False

    def spawn(self, threads: int) -> PoolWorker:
        """A new worker with ``threads`` TensorFlow threads, counted as busy (its batch's)."""
        worker = PoolWorker(self.ctx, threads)
        self.busy.append(worker)
        return worker

    def warm(self, count: int, threads: int) -> None:
        """Start ``count`` workers now, before their first batch is known."""
        self.idle += [PoolWorker(self.ctx, threads) for _ in range(count)]

    def take(self, count: int, threads: int) -> list[PoolWorker]:
        """``count`` workers with ``threads`` threads each for one batch: idle ones first, new ones for the rest.

        An idle worker with another thread count (a batch smaller than ``n_jobs`` gives each worker more
        threads) is stopped: a job's TensorFlow threads are the same as without the pool.
        """
        fit = [w for w in self.idle if w.threads == threads and w.proc.is_alive()]
        for w in self.idle:
            if w not in fit:  # not waited for here (it may still be importing TensorFlow): close() joins it
                w.tell_stop()
                self.retired.append(w)
        taken, self.idle = fit[:count], fit[count:]
        self.busy += taken
        return taken + [self.spawn(threads) for _ in range(count - len(taken))]

    def give_back(self, workers: Iterable[PoolWorker]) -> None:
        """A batch is over: its living, idle workers wait for the next batch of the sweep."""
        for w in list(workers):
            if w in self.busy:
                self.busy.remove(w)
            if w.job is None and w.proc.is_alive():
                self.idle.append(w)
            else:
                self.stop([w])

    def forget(self, worker: PoolWorker) -> None:
        """A worker that died (the launcher reported its job)."""
        if worker in self.busy:
            self.busy.remove(worker)
        worker.conn.close()

    def stop(self, workers: Iterable[PoolWorker]) -> bool:
        """Tell ``workers`` to stop, wait for them (terminated after :data:`STOP_WAIT_S`); True when all are gone."""
        workers = list(workers)
        for w in workers:
            for held in (self.idle, self.busy, self.retired):
                if w in held:
                    held.remove(w)
            w.tell_stop()
        deadline = time.monotonic() + STOP_WAIT_S  # one wait for all: they stop in parallel
        for w in workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for w in workers:
            if w.proc.is_alive():
                w.proc.terminate()
        for w in workers:
            w.proc.join(timeout=5)
            w.conn.close()
        return not any(w.proc.is_alive() for w in workers)

    def tell_all_stop(self) -> None:
        """Ask every worker to stop without waiting (they exit while the sweep's summary is written)."""
        for w in self.idle + self.busy:
            w.tell_stop()

    def close(self) -> bool:
        """Stop every worker and wait for them; True when none is left.  Safe to call more than once."""
        self.closed = True
        return self.stop(self.idle + self.busy + self.retired)


def warm_pool(launcher: LauncherSettings, planned_jobs: int | None) -> WorkerPool | None:
    """Start the workers of a layerlab-launcher sweep (None for any other launcher).

    Args:
        launcher: the sweep's launcher settings.
        planned_jobs: the jobs of its first batch when known: fewer jobs than ``n_jobs`` start fewer workers,
            each with more threads, as the launcher would.
    """
    if launcher.kind != "layerlab":
        return None
    workers = launcher.workers(planned_jobs)
    pool = WorkerPool()
    pool.warm(workers, threads_per_worker(workers))
    return pool
