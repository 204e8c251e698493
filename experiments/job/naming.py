"""Run names a person can read: a sweep's child is named by what differs
(``activation=abs model=lambda_mlp seed=3``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from experiments.config.overrides import parse_overrides


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Key -> its last dotted part (``model.activation`` -> ``activation``), the full key where two would clash."""
    keys = list(dict.fromkeys(keys))
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def name_from(values: Mapping[str, str], replicate_key: str = "seed") -> str:
    """``short=value`` pairs sorted by short name, the replicate key last: ``activation=abs model=lambda_mlp seed=3``.

    Args:
        values: key -> value of the keys that differ.
        replicate_key: the key shown last.
    """
    short = short_keys(values)
    order = sorted(values, key=lambda k: (k == replicate_key, short[k]))
    return " ".join(f"{short[k]}={values[k]}" for k in order)


def child_run_name(job_overrides: Iterable[str], sweep_overrides: Iterable[str], replicate_key: str = "seed") -> str:
    """A sweep child's name from its overrides: those not given identically to the whole sweep.

    Args:
        job_overrides: the job's overrides as typed (``model.activation=abs``, ``seed=3``...).
        sweep_overrides: the sweep's own overrides as typed (``model.activation=abs,relu``,
            ``training.epochs=1``...): those shared by every job are left out of the name.
        replicate_key: the key shown last.

    Returns:
        e.g. ``activation=abs model=lambda_mlp seed=3``; ``""`` when nothing differs.
    """
    constant = constant_keys(sweep_overrides)
    values = {o.key: o.value for o in parse_overrides(job_overrides) if o.value is not None}
    return name_from(
        {k: v for k, v in values.items() if k not in constant and not k.startswith("hydra.")}, replicate_key
    )


def swept_keys(sweep_overrides: Iterable[str]) -> set[str]:
    """Keys the sweep gives several values (``a,b``, ``choice()``, ``interval()``...): they name its children even
    where the values drawn agree."""
    return {o.key for o in parse_overrides(sweep_overrides) if o.is_sweep}


def constant_keys(sweep_overrides: Iterable[str]) -> set[str]:
    """Keys the sweep gives one value for every job (by key: a launcher may retype the value, False for false)."""
    # An override Hydra would not take is left out here, so its key stays in the name.
    return {o.key for o in parse_overrides(sweep_overrides) if not o.is_sweep}
