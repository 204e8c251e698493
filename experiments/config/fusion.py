"""Which jobs of a sweep train together: the replicates of one setting become one fused job.

``sweep.fuse_replicates=true``: the sweeper (``hydra_plugins/layerlab_rounds``)
hands the launcher, instead of one job per seed, one job per group of jobs
that differ only in the replicate key; that job trains every seed of its group
in one fit (:mod:`experiments.job.fused_job`). Done before the launch, so
every launcher (basic, joblib, layerlab, Ray, SLURM) runs fused groups, in
parallel where it runs jobs in parallel.

A fused job's overrides are its group's first job's, plus
``sweep.fused_seeds=[...]`` (the group's seeds) and ``sweep.fused_jobs=[...]``
(the job number each replica would have had alone: its child run's job number,
so the sweep summary lists the same jobs as an unfused sweep).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from experiments.config.overrides import ParsedOverride, parse_override
from experiments.errors import ConfigError

SEEDS_KEY = "sweep.fused_seeds"
JOBS_KEY = "sweep.fused_jobs"
# The only replicate key the engine (experiments.training.fused) can vary between replicas: it seeds each one.
FUSABLE_KEY = "seed"


@dataclass(frozen=True)
class FusedGroup:
    """One job for the launcher: ``overrides`` trains ``seeds``, which alone were jobs ``jobs``."""

    overrides: list[str]
    seeds: tuple[int, ...]
    jobs: tuple[int, ...]


def _key(override: str) -> str:
    """The key an override sets, as Hydra reads it (``+seed=3`` sets ``seed``); the text itself if Hydra cannot."""
    parsed = parse_override(override)
    return parsed.key if parsed is not None else str(override)


def _value(override: str) -> str:
    parsed = parse_override(override)
    return parsed.value if parsed is not None and parsed.value is not None else ""


def check_fusable(replicate_key: str) -> None:
    """Refuse a replicate key the fused engine cannot vary (it seeds each replica, nothing else)."""
    if replicate_key != FUSABLE_KEY:
        raise ConfigError(
            f"fused replicates differ only in their seed, but the replicate key is {replicate_key!r}",
            path="sweep.replicate_key",
            value=replicate_key,
            fix="sweep the seeds as replicates (sweep.replicate_key=seed), or drop sweep.fuse_replicates=true",
        )


def fuse_jobs(
    jobs: Sequence[Sequence[str]], replicate_key: str = FUSABLE_KEY, fuse_max: int | None = None, first_job: int = 0
) -> list[FusedGroup]:
    """Group the jobs that differ only in ``replicate_key`` into fused jobs of at most ``fuse_max`` replicas.

    Args:
        jobs: each job's overrides as ``key=value`` strings, as a sweeper builds them (job ``first_job + i``).
        replicate_key: the key whose values are replicates (only ``seed``: :func:`check_fusable`).
        fuse_max: the most replicas in one fused job; None: a whole group.
        first_job: the job number the first job would have had alone.

    Returns:
        The fused jobs, in the order their first job came; a job without the replicate key is left alone
        (a group of one, whose overrides are unchanged and whose ``seeds`` is empty).

    Raises:
        ConfigError: another replicate key, or a value of it that is not an integer seed.
    """
    check_fusable(replicate_key)
    groups: dict[tuple, list[tuple[int, int, list[str]]]] = {}
    alone: list[FusedGroup] = []
    order: list = []
    for i, job in enumerate(jobs):
        job = [str(o) for o in job]
        keys = [_key(o) for o in job]
        if replicate_key not in keys:
            alone.append(FusedGroup(job, (), (first_job + i,)))
            order.append(alone[-1])
            continue
        at = keys.index(replicate_key)
        value = _value(job[at])
        try:
            seed = int(value)
        except ValueError:
            raise ConfigError(
                f"fused replicates need integer seeds, got {value!r}",
                path=replicate_key,
                value=value,
                fix="sweep integer seeds, e.g. seed=0,1,2,3,4",
            ) from None
        rest = tuple(o for k, o in enumerate(job) if k != at)
        if rest not in groups:
            groups[rest] = []
            order.append(rest)
        groups[rest].append((seed, first_job + i, job))
    out: list[FusedGroup] = []
    for item in order:
        if isinstance(item, FusedGroup):
            out.append(item)
            continue
        members = groups[item]
        size = fuse_max or len(members)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            seeds = tuple(s for s, _, _ in chunk)
            numbers = tuple(n for _, n, _ in chunk)
            overrides = [
                *chunk[0][2],
                f"{SEEDS_KEY}=[{','.join(map(str, seeds))}]",
                f"{JOBS_KEY}=[{','.join(map(str, numbers))}]",
            ]
            out.append(FusedGroup(overrides, seeds, numbers))
    return out


def replica_overrides(fused_overrides: Sequence[str], seed: int, replicate_key: str = FUSABLE_KEY) -> list[str]:
    """What replica ``seed``'s overrides would have been alone: the fused keys dropped, its own seed.

    Its run name, overrides tag and rerun command come from these, as a solo job's come from its own.
    """
    out = []
    for o in fused_overrides:
        parsed = parse_override(o)
        key = parsed.key if parsed is not None else str(o)
        if key in (SEEDS_KEY, JOBS_KEY):
            continue  # as typed (+seed=3 stays +seed=<seed>)
        out.append(f"{cast(ParsedOverride, parsed).hydra.get_key_element()}={seed}" if key == replicate_key else str(o))
    if not any(_key(o) == replicate_key for o in out):
        out.append(f"{replicate_key}={seed}")
    return out


def solo_jobs(overrides: Sequence[str], job_num) -> list[tuple[str, list[str]]]:
    """(job number, overrides) of each job that launched job ``job_num`` stands for: a fused job's replicas as
    their solo jobs (numbered by ``sweep.fused_jobs``), any other job itself. How a sweep's summary lists a fused
    job that left no run."""
    by_key = {_key(o): str(o) for o in overrides}
    if SEEDS_KEY not in by_key:
        return [(str(job_num), [str(o) for o in overrides])]
    # The sweeper wrote both overrides, so Hydra parses them.
    seeds = list(_parsed(by_key[SEEDS_KEY]).hydra.value() or [])
    numbers = list(_parsed(by_key[JOBS_KEY]).hydra.value() or []) if JOBS_KEY in by_key else []
    if len(numbers) != len(seeds):
        numbers = [f"{job_num}.{i}" for i in range(len(seeds))]  # not the sweeper's: still one row per replica
    return [(str(n), replica_overrides(overrides, int(s))) for s, n in zip(seeds, numbers)]


def group_overrides(fused_overrides: Sequence[str], replicate_key: str = FUSABLE_KEY) -> list[str]:
    """A fused job's overrides as a person reads them: the fused keys dropped and ``seed=0,1,2`` (its group's seeds,
    in sweep syntax) as its seed; a job that is not fused, unchanged. The sweep's display names a job by these
    (``activation=abs seed=0,1,2``, where an unfused job is ``activation=abs seed=0``)."""
    pairs = [(_key(o), str(o)) for o in fused_overrides]
    seeds = next((_value(o).strip("[]") for key, o in pairs if key == SEEDS_KEY), None)
    if seeds is None:
        return [o for _, o in pairs]
    return [
        f"{_parsed(o).hydra.get_key_element()}={seeds}" if key == replicate_key else o
        for key, o in pairs
        if key not in (SEEDS_KEY, JOBS_KEY)
    ]


def _parsed(text: str) -> ParsedOverride:
    """``text`` parsed by Hydra, for an override known to parse (the type checker cannot see that)."""
    return cast(ParsedOverride, parse_override(text))
