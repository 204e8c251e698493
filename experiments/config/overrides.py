"""Command-line overrides read one way: Hydra's own ``OverridesParser``.

Run names, the sweep's group columns, the pre-check, the launch ledger, the
completing command and the search space all read overrides through
:func:`parse_override` / :func:`parse_overrides`, so ``+key=v``, ``++key=v``,
``~key``, ``key@pkg=v``, quoted values and sweep syntax mean the same thing
everywhere.  An argument Hydra cannot parse is left to Hydra, which reports it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParsedOverride:
    """One override as Hydra parsed it.

    Args:
        text: the override as typed.
        key: the key or group, without ``+``/``++``/``~`` (``model.activation``, ``hydra/launcher``).
        value: the value as typed right of ``=``, stripped; None for a delete without value (``~key``).
        deleted: a ``~key`` override.
        is_sweep: a sweep (``a,b``, ``range()``, ``interval()``, ``choice()``...).
        hydra: Hydra's ``Override`` object (its parsed value, for the search space).
    """

    text: str
    key: str
    value: str | None
    deleted: bool
    is_sweep: bool
    hydra: Any

    @property
    def is_hydra(self) -> bool:
        """A setting of Hydra itself (``hydra.sweep.dir=...``, ``hydra/launcher=joblib``)."""
        return self.key == "hydra" or self.key.startswith(("hydra.", "hydra/"))


def _parser():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


@functools.lru_cache(maxsize=4096)  # the sweep display names its jobs by their overrides on every refresh
def parse_override(text: str) -> ParsedOverride | None:
    """``text`` parsed by Hydra, or None when Hydra would not take it as an override."""
    from hydra.errors import HydraException

    text = str(text).strip()
    try:
        (override,) = _parser().parse_overrides([text])
    except HydraException:  # OverrideParseException and friends: Hydra's own message names it later
        return None
    _, sep, value = override.input_line.partition("=")
    key = override.key_or_group + (f"@{override.package}" if override.package else "")
    return ParsedOverride(
        text=text,
        key=key,
        value=value.strip() if sep else None,
        deleted=override.is_delete(),
        is_sweep=override.is_sweep_override(),
        hydra=override,
    )


def parse_overrides(texts: Iterable[str]) -> list[ParsedOverride]:
    """Each of ``texts`` that Hydra parses, in order (the others are left out)."""
    return [p for p in (parse_override(t) for t in texts) if p is not None]
