"""The Optuna study side of pruning: storage, pruner settings, the attribute names jobs and sweeper share.

Kept apart from the Keras callback (:mod:`experiments.training.pruning`) so
that the sweeper (``hydra_plugins/layerlab_optuna``), which runs in the sweep's
parent process, never imports Keras or TensorFlow: with a parallel launcher
the parent only waits for its workers, and importing TensorFlow there would
delay the first worker's start (BENCHMARKS.md, section 2b).
"""

from __future__ import annotations

from experiments.errors import ConfigError

PRUNER_ATTR = "pruner"  # study user attribute: the pruner's settings
VALUE_ATTR = "value"  # trial user attribute: the last reported value (the objective of a finished trial)
PRUNED_ATTR = "pruned_epoch"  # trial user attribute: the epoch (1-based) after which the trial was pruned
SQLITE_TIMEOUT_S = 60  # concurrent writers (the sweeper, its workers) wait this long for the file lock

_PRUNERS = ("median", "percentile", "successive_halving", "hyperband", "none")


def open_storage(url: str):
    """An Optuna RDB storage for ``url``; SQLite files get a generous busy timeout (several writers)."""
    import optuna

    kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def trial_id(storage, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of the study: the storage's public lookup (no ``trial._trial_id``)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), int(number))


def make_pruner(spec: dict | None):
    """The pruner of ``spec`` (``{"type": "median", "n_startup_trials": 5, ...}``; the rest are its arguments)."""
    import optuna

    spec = dict(spec or {"type": "median"})
    kind = str(spec.pop("type", "median") or "none").lower()
    table = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }
    if kind not in table:
        raise ConfigError(
            "unknown pruner", path="hydra.sweeper.pruner.type", value=kind, fix=f"choose one of {', '.join(_PRUNERS)}"
        )
    try:
        return table[kind](**{k: v for k, v in spec.items() if v is not None})
    except TypeError as exc:
        raise ConfigError(
            f"the {kind} pruner does not take these settings ({exc})",
            path="hydra.sweeper.pruner",
            value=spec,
            fix="see optuna.pruners in Optuna's documentation for its arguments",
        ) from None
