"""Optuna pruning across processes: a trial's job reports each epoch to the study and stops when told.

The study lives in an Optuna RDB storage (a SQLite file beside ``mlflow.db`` by
default), so a job in any process (the sweeper's own, a joblib worker, a
layerlab worker) reaches its trial with ``optuna.trial.Trial(study, trial_id)``.
The sweeper (``hydra/sweeper=optuna``, ``hydra_plugins/layerlab_optuna``) passes
the study name, the storage and the trial number as hidden ``+optuna.*`` overrides
(the job's ``JobConfig.optuna``); the storage maps the number to the trial;
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

from experiments.training.pruning_study import PRUNED_ATTR, PRUNER_ATTR, VALUE_ATTR, make_pruner, open_storage, trial_id


class OptunaPruning(keras.callbacks.Callback):
    """Reports ``monitor`` to the Optuna trial each epoch; stops training when the study's pruner says so.

    Args:
        storage: the study's storage URL; study: its name; trial_number: the trial's number in the study.
        monitor: the log key reported (the compared validation metric, ``val_<metric>``).
    """

    def __init__(self, storage: str, study: str, trial_number: int, monitor: str):
        super().__init__()
        import optuna

        rdb = open_storage(storage)
        loaded = optuna.load_study(study_name=study, storage=rdb, pruner=None)
        loaded.pruner = make_pruner(loaded.user_attrs.get(PRUNER_ATTR))
        self.trial = optuna.trial.Trial(loaded, trial_id(rdb, study, trial_number))
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
