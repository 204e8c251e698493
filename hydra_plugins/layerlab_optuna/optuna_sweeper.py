"""``hydra/sweeper=optuna``: an Optuna search over Hydra overrides, with pruning across processes and resume.

Upstream's ``hydra-optuna-sweeper`` cannot be used here: 1.3.0 pins
``optuna<3`` and 1.4.0rc3 needs hydra-core 1.4 (a dev release); neither prunes.
This sweeper keeps its config names (``n_trials``, ``study_name``, ``storage``,
``direction``, ``sampler``, ``params``, ``n_jobs``) and adds ``pruner``.

* The search space is Hydra's sweep syntax, on the command line or in
  ``hydra.sweeper.params`` (:mod:`._space`).
* The study is stored in an Optuna RDB storage: by default ``optuna.db``
  beside a SQLite tracking store; with ``tracking=server``, the URL given as
  ``hydra.sweeper.storage``.  Running the same command again (same
  ``study_name``) continues the study up to ``n_trials`` in total; trials left
  RUNNING by a killed search are closed FAIL first.
* Trials run in batches of ``n_jobs`` through the configured launcher
  (basic, joblib, layerlab).  Each job gets its trial as hidden
  ``+optuna.*`` overrides and reports each epoch to the study, where the
  pruner may stop it (:mod:`experiments.training.pruning`).  A job that fails
  is a FAIL trial; the search goes on.
* The sweep's MLflow parent run (:mod:`experiments.sweeps.callback`) is the
  study's: reused when the study is continued (:mod:`._report`).
"""

from __future__ import annotations

import math
from typing import Any

from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from experiments.adapters.hydra_internals import job_error
from experiments.config.launcher import LauncherSettings, parallel_jobs
from experiments.config.multirun import multirun_config
from experiments.errors import ConfigError, LayerlabError
from experiments.launching.batch import launch_batch
from experiments.sweeps import current_sweep
from experiments.tracking.uri import resolve_uri, sqlite_path
from experiments.training.pruning_study import PRUNED_ATTR, PRUNER_ATTR, VALUE_ATTR, make_pruner, open_storage, trial_id
from hydra_plugins.layerlab_optuna import _report
from hydra_plugins.layerlab_optuna._space import format_value, grid_space, parse_space

STORAGE_FILE = "optuna.db"


def default_storage(tracking_uri: str) -> str:
    """``sqlite:///<folder of mlflow.db>/optuna.db``; a server store has no folder: the user names one."""
    db = sqlite_path(tracking_uri)
    if db is None:
        raise ConfigError(
            "the Optuna study needs a storage, and a tracking server has no folder to put it in",
            path="hydra.sweeper.storage",
            value=None,
            fix="pass hydra.sweeper.storage=<URL> (sqlite:///path/optuna.db on a disk every worker "
            "sees, or postgresql://user:pass@host/db)",
        )
    return f"sqlite:///{(db.resolve().parent / STORAGE_FILE)}"


def make_sampler(spec: dict | None, space: dict, done: int = 0):
    """``done``: trials the study has already; a seeded sampler of a continued study is seeded ``seed + done``,
    so it does not draw the first search's values again."""
    import optuna

    spec = dict(spec or {})
    kind = str(spec.pop("type", "tpe") or "tpe").lower()
    seed = spec.pop("seed", None)
    seed = None if seed is None else int(seed) + done
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **spec)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid_space(space), seed=seed)
    raise ConfigError(
        "unknown sampler", path="hydra.sweeper.sampler.type", value=kind, fix="choose tpe, random or grid"
    )


class LayerlabOptunaSweeper(Sweeper):
    """See the module docstring; arguments are ``hydra.sweeper.*`` (conf/hydra/sweeper/optuna.yaml)."""

    def __init__(
        self,
        n_trials: int = 20,
        direction: str | None = None,
        study_name: str | None = None,
        storage: str | None = None,
        sampler: Any = None,
        pruner: Any = None,
        params: Any = None,
        n_jobs: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.n_trials = int(n_trials)
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.sampler = _plain(sampler) or {"type": "tpe"}
        self.pruner = _plain(pruner) or {"type": "median"}
        self.params = _plain(params) or {}
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.launcher = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # ------------------------------------------------------------------
    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self._sweep(arguments)
        except LayerlabError as exc:  # one paragraph, before or between batches
            print(f"layerlab: error: {exc}", flush=True)
            raise SystemExit(exc.exit_code) from None

    def _sweep(self, arguments: list[str]) -> list:
        import optuna

        settings = multirun_config(self.config)
        if settings.sweep.fuse_replicates:
            raise ConfigError(
                "an Optuna search cannot fuse replicates: its trials are different settings chosen one "
                "after the other, not seeds of one setting",
                path="sweep.fuse_replicates",
                value=True,
                fix="drop sweep.fuse_replicates=true from the search, or sweep the seeds with the "
                "default sweeper (python runner.py -m ... seed=0,1,2 sweep.fuse_replicates=true)",
            )
        if settings.sweep.until.ci_half_width or settings.sweep.until.verdict:
            raise ConfigError(
                "an Optuna search cannot add seeds in rounds: sweep.until.* stops a sweep of replicates "
                "when its comparisons are clear, and a search's trials are not replicates",
                path="sweep.until",
                value=dict(ci_half_width=settings.sweep.until.ci_half_width, verdict=settings.sweep.until.verdict),
                fix="drop the sweep.until.* keys from the search; to settle a comparison, sweep the "
                "chosen settings' seeds with the default sweeper (python runner.py -m ... "
                "seed=0,1,2 sweep.until.ci_half_width=0.003 sweep.until.max_replicates=20)",
            )
        space, fixed = parse_space(arguments, self.params)
        if not space:
            raise ConfigError(
                "nothing to search: no override or hydra.sweeper.params entry has a sweep value",
                path="hydra.sweeper.params",
                fix="give e.g. 'optimizer.learning_rate=tag(log, interval(1e-4, 1e-1))' or "
                "'model.activation=choice(abs, relu)'",
            )
        metric = settings.metric
        direction = self.direction or ("maximize" if metric.higher_is_better else "minimize")
        storage_url = self.storage or default_storage(resolve_uri(settings.tracking.uri))
        name = self.study_name or settings.tracking.experiment
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            storage = open_storage(storage_url)
            known = {
                s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
            }
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=make_sampler(self.sampler, space, known.get(name, 0)),
                pruner=make_pruner(self.pruner),
                direction=direction,
                load_if_exists=True,
            )
        except ValueError as exc:  # e.g. another direction than the stored study's
            raise ConfigError(
                f"the study {name!r} in {storage_url} cannot be continued ({exc})",
                path="hydra.sweeper.study_name",
                value=name,
                fix="keep the study's settings, or give a new hydra.sweeper.study_name",
            ) from None
        study.set_user_attr(PRUNER_ATTR, self.pruner)  # what every job's callback builds (experiments.training.pruning)
        stale = _close_stale(study, storage)
        done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        n_jobs = self._n_jobs(settings.launcher)
        print(
            f"layerlab: study {name!r} ({direction} {metric.val}) in {storage_url}: {done} trial(s) done"
            + (f", {stale} left RUNNING by an earlier search closed FAIL" if stale else "")
            + f"; running {max(self.n_trials - done, 0)} more, {n_jobs} at a time",
            flush=True,
        )
        current_sweep().expect_jobs(max(self.n_trials - done, 0))  # the progress display's "left" and ETA
        parent = _report.StudyParent.attach(study, storage_url, space, self.sampler, self.pruner, fixed)
        returns: list = []
        while done < self.n_trials:
            batch = [study.ask(space) for _ in range(min(n_jobs, self.n_trials - done))]
            overrides = [self._overrides(fixed, t, name, storage_url) for t in batch]
            try:
                results = launch_batch(self.launcher, overrides, batch[0].number)
            except BaseException:
                for t in batch:  # never leave a trial RUNNING in the study
                    _tell(study, t, optuna.trial.TrialState.FAIL)
                raise
            reader = open_storage(storage_url)  # uncached: what the jobs wrote from their processes
            for trial, result in zip(batch, results):
                attrs = reader.get_trial(trial_id(reader, name, trial.number)).user_attrs
                self._tell_result(study, trial, result, attrs)
            returns.extend(results)
            done += len(batch)
            parent.after_batch(study, batch)
        parent.finish(study, metric.val)
        return returns

    # ------------------------------------------------------------------
    def _n_jobs(self, launcher: LauncherSettings) -> int:
        """Trials per batch: ``hydra.sweeper.n_jobs``, else as many as the launcher runs at once."""
        if self.n_jobs is not None:
            return parallel_jobs(self.n_jobs) if int(self.n_jobs) else 1
        return launcher.workers() if launcher.n_jobs else 1

    @staticmethod
    def _overrides(fixed: list[str], trial, name: str, storage: str) -> list[str]:
        drawn = [f"{k}={format_value(v)}" for k, v in trial.params.items()]
        hidden = [f"+optuna.study='{name}'", f"+optuna.storage='{storage}'", f"+optuna.trial_number={trial.number}"]
        return [*fixed, *drawn, *hidden]

    @staticmethod
    def _tell_result(study, trial, result, attrs: dict) -> None:
        """``attrs``: the trial's user attributes as the job left them (value, pruned epoch)."""
        from optuna.trial import TrialState

        if result.status != JobStatus.COMPLETED:
            error = str(job_error(result) or "").splitlines()
            trial.set_user_attr("error", (error[0] if error else "the job failed")[:500])
            _tell(study, trial, TrialState.FAIL)
            print(f"layerlab: trial {trial.number} FAILED: {error[0] if error else 'see its run'}", flush=True)
        elif attrs.get(PRUNED_ATTR) is not None:
            _tell(study, trial, TrialState.PRUNED)
        elif attrs.get(VALUE_ATTR) is not None and math.isfinite(float(attrs[VALUE_ATTR])):
            _tell(study, trial, TrialState.COMPLETE, float(attrs[VALUE_ATTR]))
        else:
            trial.set_user_attr("error", "the job reported no value of the compared metric")
            _tell(study, trial, TrialState.FAIL)


def _tell(study, trial, state, value: float | None = None) -> None:
    try:
        study.tell(trial, value if state.name == "COMPLETE" else None, state=state)
    except RuntimeError:  # already finished (told by an earlier attempt)
        pass


def _close_stale(study, storage) -> int:
    """Trials RUNNING in the storage: no search runs them now (one search per study at a time). FAIL them.

    ``storage``: the study's storage, opened by the sweeper itself (its public methods, not ``study._storage``).
    """
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    for t in stale:
        storage.set_trial_state_values(trial_id(storage, study.study_name, t.number), TrialState.FAIL)
    return len(stale)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
