"""One worker process of the layerlab launcher's pool: warms up, then runs the jobs it is handed, one at a time.

Started by :class:`~experiments.launching.pool.WorkerPool` (spawned) when the sweep starts, before the
launcher knows its Hydra payload: the worker imports what a job imports (TensorFlow, Keras, MLflow) while the
parent opens the store and the parent run, then waits on its pipe.  Messages, in order:

* ``("setup", payload)``: the launcher's batch (pickled ``hydra_context``, config, task function and Hydra's
  ``Singleton`` state); sent before the first job of every batch the worker takes part in;
* ``("job", idx, overrides)``: one job, answered ``("done", idx, pickled JobReturn)``;
* ``None``: stop (the sweep is over).  A closed pipe (the parent died) stops it too.
"""

from __future__ import annotations


def main(conn, threads: int) -> None:
    """The worker loop (see the module docstring).

    ``threads``: TensorFlow CPU threads for this worker (cores // workers), set before TensorFlow loads.
    This process is new (spawned): the environment written here is its own.
    """
    try:
        _serve(conn, threads)
    except KeyboardInterrupt:  # Ctrl-C while warming up or idle: no job to close, the parent ends the sweep
        raise SystemExit(130) from None  # a traceback here would be the last thing a Ctrl-C'd sweep prints


def _serve(conn, threads: int) -> None:
    from experiments.process import configure_process, exit_without_teardown_at_exit, set_worker_threads

    set_worker_threads(threads)
    configure_process()
    import experiments.job.entry  # noqa: F401  (the job's whole import chain, while the parent sets up)

    batch = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone: nobody to answer
            return
        if msg is None:
            # Every job ended its MLflow run and flushed its metrics: skip TensorFlow's slow teardown.
            exit_without_teardown_at_exit()
            return
        if msg[0] == "setup":
            batch = _setup(msg[1])
            continue
        _, idx, overrides = msg
        _run(conn, batch, idx, overrides)


def _setup(payload: bytes) -> tuple:
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals
    from joblib.externals import cloudpickle

    hydra_context, config, task_function, singleton_state = cloudpickle.loads(payload)
    setup_globals()
    Singleton.set_state(singleton_state)
    return hydra_context, config, task_function


def _run(conn, batch: tuple, idx: int, overrides: list) -> None:
    """One job; its JobReturn goes back to the parent, whatever happens."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from omegaconf import open_dict

    from experiments.adapters.hydra_internals import failed_return

    hydra_context, config, task_function = batch
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    try:
        ret = run_job(
            hydra_context=hydra_context,
            config=sweep_config,
            task_function=task_function,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    except KeyboardInterrupt as exc:  # Ctrl-C/SIGTERM: the job closed its run KILLED and said so; report, then stop
        conn.send(("done", idx, _dump(failed_return(overrides, exc))))
        raise SystemExit(130) from None
    except BaseException as exc:  # SystemExit inside the job: report, then stop
        conn.send(("done", idx, _dump(failed_return(overrides, exc))))
        raise
    conn.send(("done", idx, _dump(ret)))


def _dump(ret) -> bytes:
    from hydra.core.utils import JobStatus
    from joblib.externals import cloudpickle

    from experiments.adapters.hydra_internals import job_error

    try:
        return cloudpickle.dumps(ret)
    except Exception:  # an unpicklable return value or exception: keep its text
        if ret.status == JobStatus.FAILED:
            error = job_error(ret)
            ret.return_value = RuntimeError(f"{type(error).__name__}: {error}")
        else:
            ret.return_value = repr(ret.return_value)
        ret.hydra_cfg = None
        return cloudpickle.dumps(ret)
