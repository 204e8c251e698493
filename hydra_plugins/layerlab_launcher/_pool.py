"""The parent side of the layerlab launcher: one batch on the sweep's spawned workers, watched for deaths.

The workers belong to the sweep (:class:`experiments.launching.pool.WorkerPool`, started warm by the sweep
callback): a batch takes them, hands each its Hydra payload, then one job at a time, and gives them back.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from multiprocessing.connection import wait
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException

from experiments.adapters.hydra_internals import failed_return, job_error
from experiments.process import debug_enabled

log = logging.getLogger(__name__)


class WorkerLost(CompactHydraException):
    """A job whose worker process died (a signal, or an exit without an answer); Hydra prints it in one line."""


class JobError(CompactHydraException):
    """A failed job, re-raised by Hydra's sweeper at the end: one line, the job printed its own message already."""


def _compact(ret: JobReturn, num: int) -> JobReturn:
    value = job_error(ret)
    if isinstance(value, Exception) and not debug_enabled():
        text = (str(value).splitlines() or [""])[0][:500]
        ret.return_value = JobError(
            f"job #{num} failed ({type(value).__name__}: {text}); its run, its error.txt "
            "and the sweep summary below have the details"
        )
    return ret


def death_reason(exitcode: int | None) -> str:
    """A worker's exit code in words."""
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = "; out of memory? (the kernel's OOM killer sends it: see `dmesg`)" if sig == signal.SIGKILL else ""
        return f"the worker process was killed by signal {sig} ({name}){hint}"
    return f"the worker process exited with code {exitcode} before its job ended"


def _close_lost_run(job_num: int, reason: str) -> None:
    """End the MLflow run of a job whose worker died FAILED, with ``reason``."""
    from experiments.sweeps import current_sweep

    state = current_sweep().state
    if state is None or state.parent_run_id is None:
        return
    from experiments.tracking.doctor import close_sweep_job

    try:
        run_id = close_sweep_job(state.uri, state.experiment_id, state.sweep_id, job_num, reason)
        if run_id:
            log.warning(f"#{job_num}: run {run_id} closed FAILED: {reason}")  # shown in a quiet sweep too
    except Exception as exc:  # the summary marks a RUNNING run KILLED anyway
        log.warning(f"#{job_num}: could not close its run: {type(exc).__name__}: {exc}")


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    from joblib.externals import cloudpickle

    from experiments.config.launcher import parallel_jobs, threads_per_worker
    from experiments.launching.ledger import write_ledger
    from experiments.launching.pool import WorkerPool
    from experiments.sweeps import current_sweep

    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    n = parallel_jobs(launcher.n_jobs, len(job_overrides))
    threads = threads_per_worker(n)
    log.info(
        f"layerlab launcher: {n} worker(s), {threads} TF thread(s) each, {len(job_overrides)} job(s); "
        f"sweep output dir: {sweep_dir}"
    )
    jobs = {}
    for i, overrides in enumerate(job_overrides):
        jobs[initial_job_idx + i] = {"overrides": list(filter_overrides(overrides)), "state": "queued", "error": ""}
        log.info(f"\t#{initial_job_idx + i} : {' '.join(filter_overrides(overrides))}")
    hydra_overrides = [str(o) for o in (config.hydra.overrides.hydra or [])]
    write_ledger(sweep_dir, jobs, hydra_overrides)
    payload = cloudpickle.dumps((launcher.hydra_context, config, launcher.task_function, Singleton.get_state()))
    # The sweep's pool (started warm by the sweep callback, kept for its next batches); a pool of its own
    # when the launcher runs without the callback, closed when this batch ends.
    sweep_pool = current_sweep().workers
    workers = sweep_pool if sweep_pool is not None and not sweep_pool.closed else WorkerPool()
    pending = list(range(len(job_overrides)))
    results: dict[int, JobReturn] = {}
    pool = workers.take(n, threads)
    for w in pool:
        w.setup(payload)
    finished = False
    try:
        while len(results) < len(job_overrides):
            for w in pool:
                if w.job is None and pending:
                    job = pending.pop(0)
                    jobs[initial_job_idx + job]["state"] = "running"
                    w.run(job, initial_job_idx + job, list(job_overrides[job]))
            write_ledger(sweep_dir, jobs, hydra_overrides)
            ready = wait([w.conn for w in pool] + [w.proc.sentinel for w in pool])
            for w in list(pool):
                if w.conn in ready or (w.proc.sentinel in ready and w.conn.poll()):
                    try:
                        _, _, data = w.conn.recv()
                    except (EOFError, OSError):
                        data = None
                    if data is not None and w.job is not None:
                        ret = _compact(cloudpickle.loads(data), initial_job_idx + w.job)
                        results[w.job] = ret
                        jobs[initial_job_idx + w.job]["state"] = (
                            "done" if ret.status == JobStatus.COMPLETED else "failed"
                        )
                        w.job = None
                        continue
                if w.proc.sentinel in ready or not w.proc.is_alive():
                    w.proc.join(timeout=5)
                    pool.remove(w)
                    workers.forget(w)
                    if w.job is not None:
                        num = initial_job_idx + w.job
                        reason = death_reason(w.proc.exitcode)
                        log.error(f"#{num}: {reason}; the other jobs go on")
                        _close_lost_run(num, reason)
                        jobs[num].update(state="lost", error=reason)
                        results[w.job] = failed_return(job_overrides[w.job], WorkerLost(f"job #{num}: {reason}"))
                    if pending:
                        replacement = workers.spawn(threads)
                        replacement.setup(payload)
                        pool.append(replacement)
        finished = True
    finally:
        write_ledger(sweep_dir, jobs, hydra_overrides)
        # Once more, now that no other job runs: another job's start-up check (the doctor) may have
        # found the dead worker's run between our check and our write, and called it "process lost".
        for num, job in jobs.items():
            if job["state"] == "lost":
                _close_lost_run(num, job["error"])
        if workers is not sweep_pool:  # no sweep to keep them for: this batch's own pool
            workers.close()
        elif finished:
            workers.give_back(pool)  # idle, TensorFlow imported: the sweep's next batch runs on them
        else:  # interrupted: no later batch will come, so they stop now
            workers.stop(pool)
    return [results[i] for i in range(len(job_overrides))]
