"""One worker process of the layerlab launcher: runs the jobs it is handed, one at a time."""

from __future__ import annotations


def main(conn, payload: bytes, threads: int) -> None:
    """Worker loop: receive ``("job", idx, overrides)``, answer ``("done", idx, pickled JobReturn)``; stop on None.

    ``threads``: TensorFlow CPU threads for this worker (cores // workers), set before TensorFlow loads.
    This process is new (spawned): the environment written here is its own.
    """
    from experiments.adapters.hydra_internals import failed_return
    from experiments.process import configure_process, set_worker_threads

    set_worker_threads(threads)
    configure_process()
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import run_job, setup_globals
    from joblib.externals import cloudpickle
    from omegaconf import open_dict

    hydra_context, config, task_function, singleton_state = cloudpickle.loads(payload)
    setup_globals()
    Singleton.set_state(singleton_state)
    while True:
        try:
            msg = conn.recv()
        except KeyboardInterrupt:  # Ctrl-C while idle: no job to close, the parent ends the sweep
            raise SystemExit(130) from None
        if msg is None:
            return
        _, idx, overrides = msg
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        HydraConfig.instance().set_config(sweep_config)
        try:
            ret = run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        except KeyboardInterrupt as exc:  # Ctrl-C/SIGTERM: the job closed its runs KILLED; report, then stop quietly
            conn.send(("done", idx, _dump(failed_return(overrides, exc))))
            raise SystemExit(130) from None  # a traceback here would be the last thing a Ctrl-C'd sweep prints
        except BaseException as exc:  # noqa: BLE001 - SystemExit inside the job: report, then stop
            ret = failed_return(overrides, exc)
            conn.send(("done", idx, _dump(ret)))
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
