"""Fit and score one model under its distribution strategy."""

from __future__ import annotations

from experiments.adapters.keras_internals import build_training_state
from experiments.config.schema import TrainingSchema
from experiments.data.tfdata import resident_split
from experiments.training.callbacks import ProgressFile
from experiments.training.evaluate import evaluate
from experiments.training.interrupts import StopRequest
from experiments.training.multi_worker import MultiWorkerTrainer
from experiments.training.resident import applies, resident_fit
from experiments.training.runtime import fit_verbosity


def fit_and_score(model, strategy, training: TrainingSchema, datasets: dict, callbacks: list, initial_epoch: int = 0):
    """Train from ``initial_epoch`` to ``training.epochs``, then score the train and test splits.

    Args:
        model: the compiled model, built inside ``strategy.scope()``.
        strategy: the ``tf.distribute`` strategy of the job.
        training: the job's ``training`` group (``JobConfig.training``).
        datasets: ``{"train": ..., "val": ..., "test": ...}`` batched ``tf.data`` datasets.
        callbacks: the job's callbacks (:func:`experiments.training.callbacks.make_callbacks`).
        initial_epoch: epochs already done (a resumed run).

    Returns:
        ``(history, final)``: Keras' ``History`` (or an equivalent) and the
        ``train_*`` / ``test_*`` scores.
    """
    import tensorflow as tf

    epochs = training.epochs
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3's fit cannot run under this strategy (see experiments/training/multi_worker.py).
        trainer = MultiWorkerTrainer(model, strategy, training.loss, list(training.metrics),
                                     model.optimizer, training.batch_size)
        history = trainer.fit(datasets["train"], datasets["val"], epochs, initial_epoch, callbacks)
        StopRequest.check()
        return history, {**trainer.evaluate(datasets["train"], "train_"), **trainer.evaluate(datasets["test"], "test_")}
    history = fit(model, training, datasets, callbacks, initial_epoch)
    StopRequest.check()  # a signal during the last epoch's validation
    return history, {**evaluate(model, datasets["train"], "train_"), **evaluate(model, datasets["test"], "test_")}


def fit(model, training: TrainingSchema, datasets: dict, callbacks: list, initial_epoch: int = 0):
    """``model.fit`` on ``datasets["train"]`` (validated on ``datasets["val"]``, may be None): the epochs of a run."""
    build_training_state(model, datasets["train"].element_spec)  # one trace of the train step, not two
    kwargs = dict(validation_data=datasets.get("val"), epochs=training.epochs, initial_epoch=initial_epoch,
                  callbacks=callbacks, shuffle=False,  # the dataset shuffles, seeded
                  verbose=fit_verbosity(training.verbose, in_sweep=any(isinstance(c, ProgressFile) for c in callbacks)))
    split = resident_split(datasets["train"])
    if not applies(model, split):
        return model.fit(datasets["train"], **kwargs)
    val = datasets.get("val")
    val_split = None if val is None else resident_split(val)
    with resident_fit(model, split, val_split) as (train, val_stand_in):  # the same batches, gathered in the graph
        if val_stand_in is not None:
            kwargs["validation_data"] = val_stand_in
        return model.fit(train, **kwargs)
