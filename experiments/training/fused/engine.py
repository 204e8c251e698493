"""Replicates in one fit: R seeds of one model trained as ONE fused Keras model, results per replica.

A sweep's replicates differ only in the seed. Each is a tiny model that uses
a fraction of the machine, so R of them side by side in one model, one
``fit``, do R times the useful work per step at little extra cost
(BENCHMARKS.md, "Fused replicates").

How (the public API; the sweep integration calls only this)::

    engine = FusedReplicas(build_one, seeds, compile_one)   # R models, each seeded as a solo run
    results = engine.fit(make_datasets, epochs, callbacks_per_replica)
    for r in results:      # ReplicaResult, in seed order
        r.seed, r.status, r.error, r.history.history, r.scores, r.model

* ``build_one(seed) -> keras.Model`` builds ONE model (the YAML model,
  :func:`experiments.models.build_model`). It runs right after
  ``keras.backend.clear_session()`` and ``keras.utils.set_random_seed(seed)``,
  as :func:`experiments.training.runtime.setup_runtime` does before a solo
  run builds its model: each replica's initial weights, its layer names and
  the state of its random layers equal the solo run's.
* ``compile_one(model)`` compiles one replica as a solo run would
  (``lambda m: compile_model(m, cfg)``); the fused model is compiled with
  the same optimizer config, loss, metrics and ``jit_compile``, one loss per
  replica (their sum has, per replica, exactly that replica's gradient).
* ``make_datasets(seed) -> {"train", "val", "test"}`` makes one replica's
  batched ``tf.data`` datasets (:func:`experiments.data.make_tf_dataset`
  with that seed). It is called right after ``keras.utils.set_random_seed``
  too: ``Dataset.shuffle`` takes TensorFlow's global seed at creation.
  Every replica must have as many train (and val) batches per epoch as the
  others, which the same ``dataset`` config guarantees.
* ``callbacks_per_replica``: one list per replica (e.g. each from
  :func:`~experiments.training.callbacks.make_callbacks` with its own
  folder and sink); ``self.model`` is that replica's standalone model and
  the logs carry the usual names (:mod:`experiments.training.fused.callbacks`).
* a :class:`ReplicaResult` per replica: ``status`` FINISHED, or FAILED with
  the :class:`~experiments.errors.TrainingError` of the NaN guard (the
  replica was masked, the others trained on); its Keras ``History``; its
  ``train_*`` / ``test_*`` scores (one :func:`experiments.training.evaluate.evaluate`
  of the fused model per split, whose per-replica values are those of
  :func:`~experiments.training.loop.fit_and_score` scoring a solo run); ``model``: the standalone, compiled
  ``keras.Model`` holding only that replica's weights, with the solo model's name and layer
  names (``model.save`` / ``keras.models.load_model(safe_mode=True)``).
* interrupted (Ctrl-C raises ``Interrupted`` out of ``fit``): ``engine.states``
  still holds each replica's history, error and callbacks (flush its
  checkpointer, close its run KILLED).
* resume: load each replica's ``last.keras`` weights into ``engine.models[i]``
  and its optimizer, then ``SlotMap(engine.fused, engine.models).from_replica(i)``
  (:mod:`experiments.training.fused.optimizer`) before ``fit(...,
  initial_epoch=done)``; wiring this into the job is left to the integration.

Stacked or side by side: where every layer allows it the fused model is one
stack (:mod:`experiments.training.fused.stack`: one batched product per
weighted layer for all replicas, a trace that does not grow with R); else one
branch per replica, said in one line. Both hold the replicas' own variables.

Equal to solo runs: with ``training.deterministic`` each replica's
per-epoch train and validation metrics and its test metrics equal the solo
run with the same seed (``tests/test_fused.py``, within 1e-6). The
optimizer updates each replica as its own would: every per-variable state
(Adam's moments, per-variable ``clipnorm``/``clipvalue``, weight decay, EMA)
stays per variable, and the iteration counter and a learning-rate schedule
advance once per step for all, as for each solo fit. Refused, because they
would couple the replicas: ``global_clipnorm`` (one norm over all replicas'
gradients), loss scaling (one overflow skips every replica's step), and
models with regularization losses (their ``loss`` would need the per-replica
share of ``model.losses``).

Where equality is not exact: random layers draw from their own seed
generators (Dropout, GaussianNoise: created at build time, one draw per
call), which stay equal; but a layer that draws from Keras' *global* seed
generator (``keras.random.*`` with ``seed=None`` inside ``call``) or from
TensorFlow's global RNG shares one stream among the replicas, so its draws
differ from the solo run's. Without ``training.deterministic``, TensorFlow
may reorder reductions run to run, fused or not. A replica stopped early
(early stopping) or masked (NaN) still computes in the fused graph until
the fit ends: its weights are put back, its logs ignored.

Each replica's own optimizer (of its standalone model) is given its share
of the fused optimizer's state before its callbacks see an epoch's end and
when it stops (:mod:`experiments.training.fused.optimizer`), so its
checkpoints and its returned model hold what the solo run's would: weights,
Adam's moments, the iteration count. Callbacks that *change* the optimizer
(``ReduceLROnPlateau``) act on that copy, not on the fused optimizer, and so
do nothing here; the job's callbacks do not use them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras

from experiments.adapters.keras_internals import build_training_state, use_fused_adam_kernel
from experiments.data.tfdata import resident_split
from experiments.errors import ConfigError
from experiments.training.evaluate import evaluate
from experiments.training.fused.callbacks import REPLICA_LOSS, ReplicaDispatch, ReplicaState, replica_logs
from experiments.training.fused.loss import ReplicaLoss
from experiments.training.fused.optimizer import SlotMap
from experiments.training.fused.stack import stackable, stacked_model
from experiments.training.resident import applies, resident_fit


@dataclass
class ReplicaResult:
    """One replica's outcome, as its solo run would have it."""

    seed: int
    status: str  # FINISHED | FAILED
    history: keras.callbacks.History
    scores: dict = field(default_factory=dict)  # train_* and test_* (empty when FAILED)
    model: keras.Model | None = None  # standalone, compiled; None when FAILED
    error: Exception | None = None  # the TrainingError of a FAILED replica
    stopped_epoch: int | None = None  # 0-based epoch after which its own callbacks (early stopping) stopped it


def output_name(index: int) -> str:
    """The fused model's output (and prefix of its log keys) of replica ``index``."""
    return f"r{index}"


class FusedReplicas:
    """R independently seeded copies of one model, trained in one ``fit``.

    Args:
        build_one: ``seed -> keras.Model`` (uncompiled), called after seeding.
        seeds: the replicas' seeds, in order; distinct.
        compile_one: compiles one replica as a solo run does.
        stack: stack the replicas where the model allows it (:mod:`experiments.training.fused.stack`);
            False: one branch per replica always.

    Raises:
        ConfigError: duplicate seeds, or an optimizer/model setting that would couple the replicas.
    """

    def __init__(
        self,
        build_one: Callable[[int], keras.Model],
        seeds: Sequence[int],
        compile_one: Callable[[keras.Model], None],
        stack: bool = True,
    ):
        self.seeds = [int(s) for s in seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(
                "the replicas of a fused group need distinct seeds",
                path="seed",
                value=self.seeds,
                fix="sweep the replicate key over distinct values, e.g. seed=0,1,2",
            )
        self.models: list[keras.Model] = []
        policy = keras.mixed_precision.global_policy()  # training.precision, set by setup_runtime
        for seed in self.seeds:
            _seed_like_a_solo_run(seed)
            keras.mixed_precision.set_global_policy(policy)  # clear_session resets it
            model = build_one(seed)
            compile_one(model)
            self.models.append(model)
        self.states: list[ReplicaState] = []
        self.fused = self._fuse(stack)
        _check_independent(self.models[0])

    def _fuse(self, stack: bool = True) -> keras.Model:
        """One functional model: input ``r{i}_input`` -> replica i -> output ``r{i}``; shares their variables.

        Stacked (:mod:`experiments.training.fused.stack`: one batched product per layer for all replicas)
        where the model allows it, else one branch per replica.
        """
        for model in self.models:
            if len(model.inputs) != 1 or len(model.outputs) != 1:
                raise ConfigError(
                    "fused replicates support models with one input and one output",
                    path="model",
                    value=model.name,
                    fix="train this model without fusing (sweep.fuse_replicates=false)",
                )
        reason = stackable(self.models[0]) if stack else None
        self.stacked = stack and reason is None
        if self.stacked:
            fused = stacked_model(self.models, lambda i: f"{output_name(i)}_input", output_name)
        else:
            if reason is not None:  # asked to stack, but the model does not allow it
                print(f"layerlab: fused replicas side by side, not stacked: {reason}", flush=True)
            fused = self._branches()
        return self._compile(fused)

    def _branches(self) -> keras.Model:
        """One branch per replica: each replica's model called on its own input."""
        inputs, outputs = [], []
        for i, model in enumerate(self.models):
            spec = model.inputs[0]
            x = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=f"{output_name(i)}_input")
            # A new Functional over the same layers (no copy): named per replica, so output names are unique,
            # while the standalone model keeps the solo model's name and layer names.
            replica = keras.Model(model.inputs, model.outputs, name=output_name(i))
            inputs.append(x)
            outputs.append(replica(x))
        return keras.Model(inputs, outputs, name="fused_replicas")

    def _compile(self, fused: keras.Model) -> keras.Model:
        """Compiled with the replicas' optimizer config, one loss and the metrics per output."""
        config = self.models[0].get_compile_config()
        loss = config["loss"]
        metrics = list(config.get("metrics") or [])
        fused.compile(
            optimizer=keras.optimizers.deserialize(config["optimizer"]),
            loss=[loss] * len(self.models),
            metrics=[[ReplicaLoss(loss, name=REPLICA_LOSS), *[_fresh(m) for m in metrics]] for _ in self.models],
            jit_compile=config.get("jit_compile", False),
            steps_per_execution=config.get("steps_per_execution", 1),
        )
        use_fused_adam_kernel(fused.optimizer)  # as compile_model does for a solo run
        return fused

    def fit(
        self,
        datasets,
        epochs: int,
        callbacks_per_replica: Sequence[list] | None = None,
        verbose: int = 0,
        initial_epoch: int = 0,
    ) -> list[ReplicaResult]:
        """Train every replica for ``epochs`` epochs in one fused ``fit``; score each on its own data.

        Args:
            datasets: ``seed -> {"train", "val", "test"}`` (called after seeding, see the module docs), or
                one such dict per replica, made under that replica's seed.
            epochs: the last epoch (as ``fit``'s ``epochs``).
            callbacks_per_replica: one list of callbacks per replica (or None).
            verbose: ``fit``'s verbosity for the fused fit.
            initial_epoch: epochs already done.

        Returns:
            One :class:`ReplicaResult` per replica, in seed order.
        """
        per_replica = (
            [_made_after_seeding(datasets, seed) for seed in self.seeds] if callable(datasets) else list(datasets)
        )
        if len(per_replica) != len(self.seeds):
            raise ValueError(f"{len(per_replica)} dataset dicts for {len(self.seeds)} replicas")
        train, val = (_zip([d[k] for d in per_replica], k) for k in ("train", "val"))
        callbacks_per_replica = callbacks_per_replica or [[] for _ in self.seeds]
        if len(callbacks_per_replica) != len(self.seeds):
            raise ValueError(f"{len(callbacks_per_replica)} callback lists for {len(self.seeds)} replicas")
        # Kept on the engine: after an interruption (Ctrl-C raises out of fit) the caller still finds each
        # replica's history, error and callbacks (to flush checkpoints, close runs KILLED).
        self.states = states = [ReplicaState(model, [*cbs]) for model, cbs in zip(self.models, callbacks_per_replica)]
        for state in states:
            state.callbacks.append(state.history)  # last, as Keras adds History: it sees what the others add
        slots = SlotMap(self.fused, self.models)
        dispatch = ReplicaDispatch(states, [output_name(i) for i in range(len(states))], slots.to_replica)
        build_training_state(self.fused, train.element_spec)  # one trace of the fused step, not two
        kwargs = dict(
            epochs=int(epochs), initial_epoch=int(initial_epoch), callbacks=[dispatch], shuffle=False, verbose=verbose
        )
        splits = [resident_split(d["train"]) for d in per_replica]
        if applies(self.fused, splits):  # one pipeline for the group: every replica's batch gathered in the graph
            val_splits = None if val is None else [resident_split(d["val"]) for d in per_replica]
            with resident_fit(self.fused, splits, val_splits) as (train_in, val_in):
                self.fused.fit(train_in, validation_data=val if val_in is None else val_in, **kwargs)
        else:
            self.fused.fit(train, validation_data=val, **kwargs)
        # Scored by the fused model, whose test step validation has already traced: one trace for all
        # replicas instead of one per replica; each replica's scores are what its own evaluate gives.
        scores = {
            prefix: evaluate(
                self.fused, _zip([d[split] for d in per_replica], split), "", [d[split] for d in per_replica]
            )
            for prefix, split in (("train_", "train"), ("test_", "test"))
        }
        results = []
        for i, (seed, state) in enumerate(zip(self.seeds, states)):
            if state.error is not None:
                results.append(ReplicaResult(seed, "FAILED", state.history, error=state.error))
                continue
            mine = {
                f"{prefix}{k}": v
                for prefix, values in scores.items()
                for k, v in replica_logs(values, output_name(i)).items()
            }
            results.append(
                ReplicaResult(seed, "FINISHED", state.history, mine, state.model, stopped_epoch=state.stopped_epoch)
            )
        return results


def _seed_like_a_solo_run(seed: int, clear: bool = True) -> None:
    """What :func:`experiments.training.runtime.setup_runtime` does to the seeds (and Keras' names) of a job."""
    if clear:
        keras.backend.clear_session()  # layer names restart at dense, dense_1, ... as in the solo run
    keras.utils.set_random_seed(int(seed))


def _made_after_seeding(make_datasets, seed: int) -> dict:
    """``make_datasets(seed)`` under that seed: ``Dataset.shuffle`` takes TensorFlow's global seed."""
    _seed_like_a_solo_run(seed, clear=False)
    return make_datasets(seed)


def _fresh(metric):
    """A metric identifier as compile takes it (a serialized metric object becomes a new one)."""
    return keras.metrics.deserialize(metric) if isinstance(metric, dict) else metric


def _check_independent(model: keras.Model) -> None:
    """Refuse what would couple the replicas (see the module docs)."""
    config = model.get_compile_config() or {}
    opt = config.get("optimizer") or {}
    opt_config = opt.get("config", {}) if isinstance(opt, dict) else {}
    if opt_config.get("global_clipnorm") is not None:
        raise ConfigError(
            "global_clipnorm clips by one norm over all parameters, which would couple the fused replicas",
            path="optimizer.args.global_clipnorm",
            value=opt_config["global_clipnorm"],
            fix="use clipnorm (per variable) instead, or train without sweep.fuse_replicates",
        )
    if "LossScale" in str(opt.get("class_name", "")):  # dynamic scaling; a fixed loss_scale_factor is per step
        raise ConfigError(
            "loss scaling is shared by all fused replicas (one overflow would skip every replica's step)",
            path="optimizer",
            fix="train without loss scaling, or without sweep.fuse_replicates",
        )
    spec = model.inputs[0]
    model(keras.ops.zeros((1, *spec.shape[1:]), dtype=spec.dtype), training=False)  # activity losses show in a call
    if model.losses:
        raise ConfigError(
            "the model has regularization losses, which fused replicates do not support yet",
            path="model",
            value=model.name,
            fix="remove the layers' *_regularizer arguments, or train without sweep.fuse_replicates",
        )


def _zip(datasets: list, split: str):
    """The replicas' datasets of one split as one of ``((x_0, ..., x_R-1), (y_0, ..., y_R-1))``.

    ``Dataset.zip`` stops at the shortest: replicas with different batch counts are refused instead.
    """
    import tensorflow as tf

    counts = {int(d.cardinality()) for d in datasets}
    if len(counts) > 1:
        raise ConfigError(
            f"the fused replicas have different numbers of {split} batches per epoch "
            f"({sorted(counts)}), so they cannot share one fit",
            path="dataset",
            fix="give every replica the same dataset config (only the seed may differ)",
        )
    return tf.data.Dataset.zip(tuple(datasets)).map(
        lambda *pairs: (tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))
    )
