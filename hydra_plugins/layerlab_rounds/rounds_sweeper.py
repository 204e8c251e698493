"""The project's sweeper (``hydra/sweeper=layerlab``, the default; ``rounds`` is its old name): Hydra's
basic sweep, plus fused replicates, plus new seeds in rounds until the answer is clear.

With ``sweep.fuse_replicates=true`` the jobs that differ only in the seed are
handed to the launcher as one fused job per group (at most ``sweep.fuse_max``
replicas each; :mod:`experiments.config.fusion`), the first batch and every
round alike; not in a dry run, whose jobs are each checked alone.

With ``sweep.until.ci_half_width=w`` (every compared difference known to
within ±w) or ``sweep.until.verdict=true`` (every comparison different, or
equivalent within ``sweep.equivalence_margin``), and ``sweep.until.max_replicates``
as the cap, the sweep first runs the seeds it was given, then asks the
stopping rule (:mod:`experiments.analysis.sequential`: alpha spending over
the rounds, so looking after every round does not inflate false positives)
and, until it says stop, runs another round of new seeds (never reused) for
every group through the configured launcher (basic, joblib, layerlab, Ray...).
Without ``sweep.until`` it is the basic sweeper.  The outcome (rounds, reason,
repeated confidence intervals) goes to ``rounds.md`` in the sweep folder and on
the sweep's parent run, with the tag ``layerlab.rounds``.

Kept apart from :mod:`experiments.sweeps` on purpose: it only launches more
jobs of the same sweep (same folder, job numbers continuing), which the
parent run and the final comparison then include like any other job.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from experiments.config.fusion import check_fusable, fuse_jobs
from experiments.config.multirun import multirun_config
from experiments.errors import ConfigError, LayerlabError
from experiments.launching.batch import launch_batch


class LayerlabRoundsSweeper(Sweeper):
    """See the module docstring; arguments are ``hydra.sweeper.*`` (conf/hydra/sweeper/layerlab.yaml)."""

    def __init__(self, max_batch_size: int | None = None, params: dict | None = None) -> None:
        super().__init__()
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.fuse: tuple[str, int | None] | None = None  # (replicate key, fuse_max) when fusing replicates
        self.solo_jobs = 0  # jobs so far as an unfused sweep would number them (a fused job holds several)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self._sweep(arguments)
        except LayerlabError as exc:  # one paragraph, before or between rounds
            print(f"layerlab: error: {exc}", flush=True)
            raise SystemExit(exc.exit_code) from None

    def _sweep(self, arguments: list[str]) -> list:
        settings = multirun_config(self.config)  # typed: every default lives in the schema
        until = dataclasses.asdict(settings.sweep.until)
        key = str(settings.sweep.replicate_key)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [*(f"{k}={v}" for k, v in self.params.items()), *arguments]
        values = {o.get_key_element(): _values(o) for o in parser.parse_overrides(lines)}  # the later one wins
        rounds = bool(until.get("ci_half_width") or until.get("verdict"))
        rule = None
        if rounds:  # the statistics (SciPy, pandas) load only for a sweep that asks for rounds: Hydra imports this
            from hydra_plugins.layerlab_rounds import _rounds  # plugin at every runner.py start

            rule = _rounds.rule(until, _replicates(values.get(key), key), settings.sweep.equivalence_margin)
        if rounds and settings.dry_run:
            raise ConfigError(
                "a dry run trains nothing, so there is nothing to add rounds to",
                path="sweep.until",
                value=until,
                fix="drop dry_run=true, or the sweep.until.* keys",
            )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        used = _replicates(values[key], key) if rounds else []
        if settings.sweep.fuse_replicates and not settings.dry_run:
            check_fusable(key)
            self.fuse = (key, settings.sweep.fuse_max)
        returns: list = []
        while True:
            returns += self._launch(values, sum(len(r) for r in returns))
            if rule is None:
                break
            decision, labels = _rounds.decide_round(rule, key, len(used))
            print(
                f"layerlab: round {decision.look} ({len(used)} {key}s per group): "
                f"{decision.reason or 'not decided yet, adding ' + key + 's'}",
                flush=True,
            )
            if decision.stop:
                _rounds.record(rule, decision, labels)
                break
            looks = rule.looks()
            current = _rounds.next_replicates(used, looks[decision.look] - looks[decision.look - 1])
            used += current
            values[key] = [str(v) for v in current]
        for results in returns:  # as the basic sweeper: a failed job's error surfaces once everything ran
            for r in results:
                _ = r.return_value
        return returns

    def _launch(self, values: dict[str, list[str]], job_idx: int) -> list:
        """Every combination of ``values`` as jobs, in batches of ``max_batch_size``, numbered from ``job_idx``."""
        jobs = [[f"{k}={v}" for k, v in zip(values, combo)] for combo in itertools.product(*values.values())]
        if self.fuse is not None:  # each group of replicates becomes one job, numbered as its runs would be alone
            fused = fuse_jobs(jobs, self.fuse[0], self.fuse[1], first_job=self.solo_jobs)
            print(f"layerlab: {len(jobs)} jobs fused into {len(fused)} (sweep.fuse_replicates=true)", flush=True)
            self.solo_jobs += len(jobs)
            jobs = [group.overrides for group in fused]
        size = self.max_batch_size or len(jobs)
        out = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            self.validate_batch_is_legal(batch)
            out.append(launch_batch(self.launcher, batch, job_idx + start))  # a dead joblib worker: one paragraph
        return out


def _values(override: Any) -> list[str]:
    """The values one override sweeps (one for a plain override), as Hydra's basic sweeper reads them."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if not override.is_discrete_sweep():
        raise ConfigError(
            "hydra/sweeper=rounds sweeps lists and ranges only",
            path=override.get_key_element(),
            value=override.input_line,
            fix="list the values, e.g. key=a,b or key=range(0,5)",
        )
    return list(override.sweep_string_iterator())


def _replicates(values: list[str] | None, key: str) -> list[int]:
    """The integer replicate values given (``seed=0,1,2`` or ``seed=range(0,3)``)."""
    if values is None:
        raise ConfigError(
            f"rounds add new values of {key}, but {key} is not swept",
            path="sweep.until",
            value=None,
            fix=f"sweep the replicates, e.g. {key}=0,1,2,3,4",
        )
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ConfigError(
            f"rounds add new integer values of {key}",
            path=key,
            value=",".join(values),
            fix=f"sweep integers, e.g. {key}=0,1,2,3,4",
        ) from None
