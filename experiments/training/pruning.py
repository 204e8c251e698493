"""Optuna pruning across processes: a trial's job reports each epoch to the study and stops when told.

The study lives in an Optuna RDB storage (a SQLite file beside ``mlflow.db`` by
default), so a job in any process (the sweeper's own, a joblib worker, a
layerlab worker) reaches its trial with ``optuna.trial.Trial(study, trial_id)``.
The sweeper (``hydra/sweeper=optuna``, ``hydra_plugins/layerlab_optuna``) passes
the study name, the storage and the trial id as hidden ``+optuna.*`` overrides;
the pruner's settings are stored with the study (user attribute ``pruner``), so
the sweeper and every job build the same pruner (:func:`make_pruner`).

A pruned job is not a failed one: training stops at the end of that epoch, the
job scores the model as usual and its run ends FINISHED, tagged
``layerlab.pruned=true`` and ``layerlab.pruned_epoch``; the sweeper tells the
study the trial was PRUNED.
"""

from __future__ import annotations

import math

import keras

from experiments.errors import ConfigError

PRUNER_ATTR = "pruner"          # study user attribute: the pruner's settings
VALUE_ATTR = "value"            # trial user attribute: the last reported value (the objective of a finished trial)
PRUNED_ATTR = "pruned_epoch"    # trial user attribute: the epoch (1-based) after which the trial was pruned
SQLITE_TIMEOUT_S = 60           # concurrent writers (the sweeper, its workers) wait this long for the file lock

_PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "none")


def open_storage(url: str):
    """An Optuna RDB storage for ``url``; SQLite files get a generous busy timeout (several writers)."""
    import optuna

    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def make_pruner(spec: dict | None):
    """The pruner of ``spec`` (``{"type": "median", "n_startup_trials": 5, ...}``; the rest are its arguments)."""
    import optuna

    spec = dict(spec or {"type": "median"})
    kind = str(spec.pop("type", "median") or "none").lower()
    table = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
             "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
             "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}
    if kind not in table:
        raise ConfigError("unknown pruner", path="hydra.sweeper.pruner.type", value=kind,
                          fix=f"choose one of {', '.join(_PRUNERS)}")
    try:
        return table[kind](**{k: v for k, v in spec.items() if v is not None})
    except TypeError as exc:
        raise ConfigError(f"the {kind} pruner does not take these settings ({exc})", path="hydra.sweeper.pruner",
                          value=spec, fix="see optuna.pruners in Optuna's documentation for its arguments") from None


class OptunaPruning(keras.callbacks.Callback):
    """Reports ``monitor`` to the Optuna trial each epoch; stops training when the study's pruner says so.

    Args:
        storage: the study's storage URL; study: its name; trial_id: the trial's storage id.
        monitor: the log key reported (the compared validation metric, ``val_<metric>``).
    """

    def __init__(self, storage: str, study: str, trial_id: int, monitor: str):
        super().__init__()
        import optuna

        loaded = optuna.load_study(study_name=study, storage=open_storage(storage))
        loaded.pruner = make_pruner(loaded.user_attrs.get(PRUNER_ATTR))
        self.trial = optuna.trial.Trial(loaded, int(trial_id))
        self.monitor = monitor
        self.pruned_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch)
        self.trial.set_user_attr(VALUE_ATTR, float(value))
        if self.trial.should_prune():
            self.pruned_epoch = epoch + 1
            self.trial.set_user_attr(PRUNED_ATTR, epoch + 1)
            print(f"layerlab: trial pruned after epoch {epoch + 1} ({self.monitor}={float(value):.4f})", flush=True)
            self.model.stop_training = True
