"""The config schema: every group's keys, types, ranges and allowed values, written once.

Each config group (``conf/<group>/*.yaml``) has one dataclass here (the
``dataset`` options have theirs in :mod:`experiments.config.datasets`); the
friendly one-paragraph errors come from the fields' ``expect`` texts
(:mod:`experiments.config.fields`).  The model *graph* (layers, nodes,
shapes) is checked by :mod:`experiments.models`, which knows the registry.

When it runs: right after Hydra composes a job's config, inside the job,
before any data is loaded or a layer is built.  A Hydra structured-config
schema in the ConfigStore would be checked while the *launcher* composes the
jobs, so one bad value would abort the whole sweep before anything ran; here a
bad job fails alone (FAILED run, a rerun command in the sweep summary) and the
others go on.  ``python runner.py -m ... dry_run=true`` checks every job of a
sweep without training.

:func:`validate` returns a :class:`JobConfig`: frozen instances of these
classes, every default filled in from the ``spec(...)`` of its field (the only
place a default is written).  The code below ``experiments/job/`` reads that
object (``job.training.epochs``), never the raw config; a new key is one new
field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from experiments.config.access import resolved_container, select
from experiments.config.datasets import DatasetSchema, dataset_config
from experiments.config.fields import check_node, spec, typed
from experiments.config.metrics import MetricSpec, judged_metric
from experiments.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker")
BACKENDS = ("tensorflow", "jax", "torch")  # Keras 3's backends (KERAS_BACKEND)
PRECISIONS = ("float32", "mixed_bfloat16")  # training.precision (experiments/training/precision.py)
FUSE_LAYOUTS = ("auto", "stacked", "branches")  # sweep.fuse_layout (experiments/job/fused_job.py)
_BOOL = "true or false"


def _positive(v) -> bool:
    return v > 0


def _non_negative(v) -> bool:
    return v >= 0


@dataclass(frozen=True)
class EarlyStoppingSchema:
    enabled: bool = spec(False, expect=_BOOL)
    monitor: Optional[str] = spec(
        None, expect="null (the validation value of the compared metric) or a log key such as val_loss"
    )
    patience: int = spec(3, expect="a non-negative integer", check=_non_negative)
    restore_best_weights: bool = spec(True, expect=_BOOL)


@dataclass(frozen=True)
class CheckpointSchema:
    enabled: bool = spec(True, expect=_BOOL)
    every_s: float = spec(30, expect="a non-negative number of seconds", check=_non_negative)
    monitor: Optional[str] = spec(
        None, expect="null (the validation value of the compared metric) or a log key such as val_loss"
    )


@dataclass(frozen=True)
class TrainingSchema:
    epochs: int = spec(expect="a positive integer, e.g. training.epochs=20", check=_positive)
    batch_size: int = spec(expect="a positive integer, e.g. training.batch_size=1024", check=_positive)
    loss: str = spec(expect="a Keras loss name such as sparse_categorical_crossentropy")
    metrics: list[str] = spec(
        expect="a list of Keras metric names, e.g. [sparse_categorical_accuracy]",
        default_factory=lambda: ["sparse_categorical_accuracy"],
    )
    deterministic: bool = spec(False, expect=_BOOL)
    verbose: Any = spec("auto", expect="auto, 0, 1 or 2", check=lambda v: v in ("auto", 0, 1, 2))
    shuffle: bool = spec(True, expect=_BOOL)
    jit_compile: Optional[Union[bool, str]] = spec(
        None,
        expect="null (the backend's default: on for JAX, off otherwise), true, false or auto",
        check=lambda v: v in (None, True, False, "auto"),
    )
    precision: str = spec("float32", expect="float32 or mixed_bfloat16", check=lambda v: v in PRECISIONS)
    steps_per_execution: int = spec(
        32, expect="a positive integer, e.g. training.steps_per_execution=32", check=_positive
    )
    threads: Optional[int] = spec(None, expect="null or a positive integer", check=lambda v: v is None or v > 0)
    strategy: str = spec("default", expect=f"one of {', '.join(STRATEGIES)}", check=lambda v: v in STRATEGIES)
    logical_cpus: Optional[int] = spec(None, expect="null or a positive integer", check=lambda v: v is None or v > 0)
    early_stopping: EarlyStoppingSchema = spec(expect="a mapping", default_factory=EarlyStoppingSchema)
    checkpoint: CheckpointSchema = spec(expect="a mapping", default_factory=CheckpointSchema)
    resume: Optional[Union[str, bool]] = spec(
        None, expect="null, true, or a run id", fix="use training.resume=true or training.resume=<run id>"
    )

    @property
    def resume_target(self) -> Union[str, bool, None]:
        """What ``resume`` asks for: None (a new run), True (this config's latest interrupted run) or a run id."""
        want = self.resume
        if want in (None, False) or str(want).lower() in ("false", "null", "none"):
            return None
        if want is True or str(want).lower() == "true":
            return True
        return str(want)


@dataclass(frozen=True)
class OptimizerSchema:
    name: str = spec(expect="a keras.optimizers class name such as Adam")
    learning_rate: float = spec(expect="a positive number, e.g. optimizer.learning_rate=0.001", check=_positive)
    args: dict = spec(expect="a mapping of extra optimizer arguments", default_factory=dict)


@dataclass(frozen=True)
class TrackingSchema:
    uri: Optional[str] = spec(None, expect="null, sqlite:///path.db, http://host:port, postgresql://...")
    experiment: str = spec("layerlab", expect="a non-empty experiment name", check=lambda v: bool(v.strip()))
    artifact_root: Optional[str] = spec(None, expect="null or a folder / URI for the artifacts")
    log_model: bool = spec(True, expect=_BOOL)
    log_plots: bool = spec(True, expect=_BOOL)
    timeout_s: float = spec(10, expect="a positive number of seconds", check=_positive)
    retry_s: float = spec(30, expect="a non-negative number of seconds", check=_non_negative)


@dataclass(frozen=True)
class RegistrySchema:
    modules: list[str] = spec(expect="a list of dotted module paths, e.g. [my_pkg.layers]", default_factory=list)


@dataclass(frozen=True)
class UntilSchema:
    ci_half_width: Optional[float] = spec(
        None,
        expect="null or a positive half width in the metric's units, e.g. sweep.until.ci_half_width=0.003",
        check=lambda v: v is None or v > 0,
    )
    verdict: bool = spec(False, expect=_BOOL)
    max_replicates: Optional[int] = spec(
        None,
        expect="null or the most seeds per group, e.g. sweep.until.max_replicates=20",
        check=lambda v: v is None or v >= 2,
    )
    step: Optional[int] = spec(
        None,
        expect="null (as many as given first) or a positive number of seeds per round",
        check=lambda v: v is None or v > 0,
    )


@dataclass(frozen=True)
class SweepSchema:
    compare: bool = spec(True, expect=_BOOL)
    metric: Optional[str] = spec(None, expect="null (the first of training.metrics) or a Keras metric name")
    mode: Optional[str] = spec(
        None, expect="null (max, or min for losses and errors), max or min", check=lambda v: v in (None, "max", "min")
    )
    target_accuracy: Optional[float] = spec(
        None,
        expect="null (0.9 for a higher-is-better metric, none for a "
        "lower-is-better one) or the validation value whose "
        "'epochs to reach' is reported",
    )
    skip_finished: bool = spec(False, expect=_BOOL)
    replicate_key: str = spec(
        "seed",
        expect="the swept key whose values are replicates, e.g. sweep.replicate_key=seed",
        check=lambda v: bool(v.strip()),
    )
    compare_by: Optional[list[str]] = spec(
        None, expect="null (every swept key) or a list of swept keys, e.g. 'sweep.compare_by=[model.activation]'"
    )
    all_pairs: bool = spec(False, expect=_BOOL)
    register_as: Optional[str] = spec(None, expect="null or a registered model name (the best job's model goes there)")
    min_effect: Optional[float] = spec(
        None,
        expect="null or a positive difference in the metric's units worth detecting, e.g. sweep.min_effect=0.005",
        check=lambda v: v is None or v > 0,
    )
    equivalence_margin: Optional[float] = spec(
        None,
        expect="null or a positive margin in the metric's units, e.g. sweep.equivalence_margin=0.005",
        check=lambda v: v is None or v > 0,
    )
    until: UntilSchema = spec(
        expect="a mapping (ci_half_width, verdict, max_replicates, step)", default_factory=UntilSchema
    )
    # Fused replicates (experiments/sweeps/fusion.py groups the jobs, experiments/job/fused_job.py trains them).
    fuse_replicates: bool = spec(False, expect=_BOOL)
    fuse_max: Optional[int] = spec(
        None,
        expect="null (one fused job per group) or the most replicas in one fused job, e.g. sweep.fuse_max=5",
        check=lambda v: v is None or v > 0,
    )
    fuse_layout: str = spec(
        "auto",
        expect="auto, stacked or branches (auto: branches on TensorFlow's CPU, stacked elsewhere)",
        check=lambda v: v in FUSE_LAYOUTS,
    )
    # experiments/job/background_close.py: a job's FINISHED runs closed while the sweep's next job trains
    close_in_background: bool = spec(True, expect=_BOOL)
    # Set by the sweeper on a fused job, never by hand: the group's seeds and the job numbers they had alone.
    fused_seeds: Optional[list[int]] = spec(None, expect="null; set by the sweeper (sweep.fuse_replicates=true)")
    fused_jobs: Optional[list[int]] = spec(None, expect="null; set by the sweeper (sweep.fuse_replicates=true)")


@dataclass(frozen=True)
class ModelSchema:
    """The model group's own keys.

    The graph keys (``layers``, ``nodes``, ...) are checked by :mod:`experiments.models`,
    which knows the registry; any other key is a model variable of the user's
    (``hidden_units: 128``, referred to as ``${model.hidden_units}``).
    """

    name: str = spec(expect="the model's name (conf/model/<name>.yaml)")
    activation: Optional[str] = spec(None, expect="an activation name such as abs or relu")
    description: Optional[str] = spec(None, expect="a sentence")


@dataclass(frozen=True)
class OptunaSchema:
    """The hidden ``+optuna.*`` keys the search sweeper gives each trial's job (hydra_plugins/layerlab_optuna)."""

    study: str = spec(expect="the Optuna study's name")
    storage: str = spec(expect="the study's storage URL")
    trial_number: int = spec(expect="the trial's number in the study", check=_non_negative)


@dataclass(frozen=True)
class RootSchema:
    seed: int = spec(0, expect="a non-negative integer", check=_non_negative)
    dry_run: bool = spec(False, expect=_BOOL)
    list_layers: Union[bool, str] = spec(False, expect="true, false or a layer name pattern such as '*Dense*'")
    backend: str = spec(
        "tensorflow",
        expect=f"one of {', '.join(BACKENDS)}",
        check=lambda v: v in BACKENDS,
        fix="use backend=tensorflow, backend=jax or backend=torch (or set KERAS_BACKEND)",
    )


GROUPS: dict[str, type] = {
    "training": TrainingSchema,
    "optimizer": OptimizerSchema,
    "tracking": TrackingSchema,
    "registry": RegistrySchema,
    "sweep": SweepSchema,
}
REQUIRED_GROUPS = ("dataset", "model", "optimizer", "training", "tracking")


@dataclass(frozen=True)
class JobConfig:
    """One job's validated config, as the code below ``experiments/job/`` reads it.

    Args:
        seed, dry_run, list_layers, backend: the top-level keys (:class:`RootSchema`).
        training, optimizer, tracking, registry, sweep, model: one schema instance per group.
        model_spec: the whole ``model`` node, plain and resolved: the graph :mod:`experiments.models` builds.
        dataset: the dataset option's schema instance (:mod:`experiments.config.datasets`).
        optuna: the trial of a search sweep, None otherwise.
        extra: the user's own top-level keys (``+notes.owner=alice``), logged as params.
    """

    seed: int
    dry_run: bool
    list_layers: Union[bool, str]
    backend: str
    training: TrainingSchema
    optimizer: OptimizerSchema
    tracking: TrackingSchema
    registry: RegistrySchema
    sweep: SweepSchema
    model: ModelSchema
    model_spec: dict
    dataset: DatasetSchema
    optuna: Optional[OptunaSchema] = None
    extra: dict = field(default_factory=dict)

    @property
    def metric(self) -> MetricSpec:
        """The judged metric (:func:`experiments.config.metrics.judged_metric`)."""
        return judged_metric(self.sweep.metric, self.sweep.mode, self.training.metrics)


_ROOT_KEYS = ("seed", "dry_run", "list_layers", "backend")


def run_mode(cfg: DictConfig) -> str:
    """``"dry_run"``, ``"list"`` or ``"run"``: what ``run_job`` does, read before the config is validated
    (a dry run records its own validation failure)."""
    listing = select(cfg, "list_layers", False)
    if listing is True or (isinstance(listing, str) and listing not in ("", "false")):
        return "list"  # true, or a layer name pattern ('*Dense*')
    return "dry_run" if select(cfg, "dry_run", False) is True else "run"


def requested_backend(cfg: DictConfig) -> str:
    """The ``backend`` a config asks for, read before validation (an invalid value: the default; the schema
    reports it)."""
    try:
        value = select(cfg, "backend", "tensorflow")
    except ConfigError:
        return "tensorflow"
    return value if value in BACKENDS else "tensorflow"


def validate(cfg: DictConfig) -> JobConfig:
    """Check the composed config against the schema; return it as a frozen, typed :class:`JobConfig`.

    Raises:
        ConfigError: the first problem, naming the path, the value, what is
            expected and how to set it on the command line.
    """
    for group in REQUIRED_GROUPS:
        if select(cfg, group, None) is None:
            raise ConfigError(
                "this config group is missing",
                path=group,
                fix=f"add `- {group}: <option>` to the defaults or pass `{group}=<option>`",
            )
    data = _resolved(cfg)
    # Top-level keys beyond the schema (`+notes.x=...`) are the user's own: kept and logged as params.
    root = check_node(RootSchema, {k: v for k, v in data.items() if k in _ROOT_KEYS}, "")
    groups = {group: typed(schema, data.get(group, {}), group) for group, schema in GROUPS.items()}
    backend = root.get("backend", "tensorflow")
    if groups["training"].jit_compile is None:  # per backend: JAX runs eagerly (slowly) without XLA
        groups["training"] = replace(groups["training"], jit_compile=backend == "jax")
    if backend == "torch":  # Keras's PyTorch trainer runs one step per call and refuses any other value
        groups["training"] = replace(groups["training"], steps_per_execution=1)
    if groups["training"].strategy != "default":
        # Keras' several-steps loop fails inside a tf.distribute strategy (TF 2.21: "You must feed a value for
        # placeholder tensor ... multi_step_on_iterator"); a distributed step runs one per call.
        groups["training"] = replace(groups["training"], steps_per_execution=1)
    if backend != "tensorflow" and groups["training"].strategy != "default":
        raise ConfigError(
            f"is a tf.distribute strategy, which runs on the TensorFlow backend only (backend={backend})",
            path="training.strategy",
            value=groups["training"].strategy,
            fix="use training.strategy=default on this backend, or backend=tensorflow",
        )
    model = typed(ModelSchema, data["model"], "model", extra=lambda key: True)
    optuna = typed(OptunaSchema, data["optuna"], "optuna") if data.get("optuna") is not None else None
    extra = {k: v for k, v in data.items() if k not in (*_ROOT_KEYS, *GROUPS, "model", "dataset", "optuna")}
    return JobConfig(
        **root,
        **groups,
        model=model,
        model_spec=dict(data["model"]),
        dataset=dataset_config(data["dataset"], (data.get("registry") or {}).get("modules")),
        optuna=optuna,
        extra=extra,
    )


def _resolved(cfg: DictConfig) -> dict:
    try:
        return resolved_container(cfg)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve, a missing value (???)
        key = getattr(exc, "full_key", None) or "the config"
        raise ConfigError(
            f"cannot be resolved ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            path=str(key),
            fix="check the ${...} reference or give the key a value",
        ) from None
