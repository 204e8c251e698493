"""Hydra's sweep syntax -> Optuna distributions, and drawn values -> overrides.

``interval(a, b)`` is a float (int if both bounds are ints) range, ``tag(log, ...)`` samples it on a log
scale; ``choice(a, b)`` and ``a,b`` are categorical; ``range(a, b, s)`` is an int range with step ``s``
(``b`` excluded, as in Python).  Anything else is a fixed override passed to every trial.
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

from experiments.config.overrides import ParsedOverride, parse_override
from experiments.errors import ConfigError


def _distribution(parsed: ParsedOverride):
    import optuna.distributions as d

    override = parsed.hydra
    value = override.value()
    key = override.get_key_element()
    if isinstance(value, ChoiceSweep):
        choices = [x for x in override.sweep_iterator(transformer=lambda x: x)]
        return d.CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        if not all(isinstance(x, int) for x in (value.start, value.stop, value.step)):
            return d.CategoricalDistribution(list(override.sweep_iterator(transformer=lambda x: x)))
        values = list(range(int(value.start), int(value.stop), int(value.step)))
        if not values:
            raise ConfigError(
                "this range() is empty",
                path=key,
                value=parsed.value,
                fix="give range(start, stop, step) with start < stop (stop is excluded)",
            )
        return d.IntDistribution(values[0], values[-1], step=int(value.step))
    if isinstance(value, IntervalSweep):
        log = "log" in (value.tags or set())
        if isinstance(value.start, int) and isinstance(value.end, int) and not log:
            return d.IntDistribution(int(value.start), int(value.end))
        return d.FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(
        "this sweep syntax cannot be searched",
        path=key,
        value=parsed.value,
        fix="use interval(a, b), tag(log, interval(a, b)), choice(a, b), a,b or range(a, b, step)",
    )


def parse_space(arguments: list[str], params: dict | None) -> tuple[dict[str, Any], list[str]]:
    """(search space ``{key: distribution}``, fixed overrides) from the command line and ``hydra.sweeper.params``.

    A key given on the command line wins over the same key of ``params``.
    """
    given = {o.hydra.get_key_element(): o for o in map(_parsed, arguments)}
    from_params = [f"{k}={v}" for k, v in (params or {}).items() if str(k) not in given]
    space, fixed = {}, []
    for override in [*map(_parsed, from_params), *given.values()]:
        if override.is_sweep:
            space[override.hydra.get_key_element()] = _distribution(override)
        else:
            fixed.append(override.hydra.input_line)
    return space, fixed


def _parsed(text: str) -> ParsedOverride:
    """One override of the search; Hydra's own error when it does not parse (as before the sweep starts)."""
    parsed = parse_override(text)
    if parsed is None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        OverridesParser.create().parse_overrides([text])  # raises Hydra's message for this text
    return parsed


def format_value(value: Any) -> str:
    """A drawn value as Hydra override text."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)


def grid_space(space: dict) -> dict[str, list]:
    """The grid sampler's ``{key: values}``; an interval of floats has no grid."""
    import optuna.distributions as d

    grid = {}
    for key, dist in space.items():
        if isinstance(dist, d.CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, d.IntDistribution):
            grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise ConfigError(
                "the grid sampler needs values to enumerate, not a float interval",
                path=key,
                fix="give choice(...) or range(...) for this key, or use hydra.sweeper.sampler.type=tpe",
            )
    return grid


def describe(space: dict) -> dict[str, str]:
    """The search space as short text per key (the parent run's params)."""
    out = {}
    for key, dist in space.items():
        kind = type(dist).__name__.removesuffix("Distribution").lower()
        if hasattr(dist, "choices"):
            out[key] = f"choice{tuple(dist.choices)}"
        else:
            out[key] = (
                f"{kind}[{dist.low}, {dist.high}]"
                + (" log" if getattr(dist, "log", False) else "")
                + (f" step {dist.step}" if getattr(dist, "step", None) not in (None, 1) else "")
            )
    return out
