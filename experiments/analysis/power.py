"""What a comparison could see: the smallest difference it would detect, and the replicates a smaller one needs.

A non-significant comparison means little on its own: five seeds with a wide
spread cannot see a difference that a hundred seeds would.  For every
comparison this module gives, from the spread the sweep observed,

- the minimum detectable difference: the true difference the same test (same
  alpha, same number of replicates) would find with 80% power, and
- the replicates per group that would find ``sweep.min_effect`` with 80% power.

Both come from statsmodels' power classes: a paired comparison is a
one-sample t-test on the per-replicate differences
(:class:`statsmodels.stats.power.TTestPower`, scaled by their sd); an unpaired
one is the two-sample t-test (:class:`~statsmodels.stats.power.TTestIndPower`,
scaled by the pooled sd, the Welch test's equal-variance counterpart).  An
unpaired interaction contrast (four cell means) is treated as a one-sample
test with the contrast's standard error at the smallest cell's size.  The
observed sd stands in for the true one, so both figures are estimates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from statsmodels.stats.power import TTestIndPower, TTestPower

#: The power the detectable difference and the replicates needed are given for.
POWER = 0.8
#: Replicates-needed figures above this are reported as ">this" (the solver's search has to stop somewhere).
MAX_REPLICATES = 100_000


def _effect_at(power_class, alpha: float, **nobs) -> float:
    """The standardised effect a t-test detects with :data:`POWER` at these sample sizes (NaN if undefined)."""
    try:
        return float(power_class.solve_power(effect_size=None, alpha=alpha, power=POWER, **nobs))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return math.nan


def _replicates_for(power_class, effect: float, alpha: float, **ratio) -> float:
    """Replicates (per group) for :data:`POWER` at a standardised effect; at least 2, ``inf`` past the cap."""
    if not math.isfinite(effect) or effect <= 0:
        return math.nan
    key = "nobs1" if ratio else "nobs"
    try:
        n = float(power_class.solve_power(effect_size=effect, alpha=alpha, power=POWER, **{key: None}, **ratio))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return math.inf
    return float(max(2, math.ceil(n))) if math.isfinite(n) and n <= MAX_REPLICATES else math.inf


def paired_sensitivity(diffs: Sequence[float], alpha: float, min_effect: float | None = None) -> dict[str, float]:
    """Detectable difference and replicates needed for a paired t-test on per-replicate differences.

    Args:
        diffs: the per-replicate differences A - B.
        alpha: the two-sided significance level of the test.
        min_effect: the difference worth detecting (``sweep.min_effect``), or ``None``.

    Returns:
        ``detectable_diff`` (metric units, NaN when the sd is 0 or n < 2) and
        ``replicates_needed`` (pairs; NaN without ``min_effect``).
    """
    d = np.asarray(diffs, dtype=float)
    sd = float(d.std(ddof=1)) if d.size >= 2 else math.nan
    if not (math.isfinite(sd) and sd > 0):
        return {"detectable_diff": math.nan, "replicates_needed": math.nan}
    out = {"detectable_diff": _effect_at(TTestPower(), alpha, nobs=d.size) * sd, "replicates_needed": math.nan}
    if min_effect:
        out["replicates_needed"] = _replicates_for(TTestPower(), abs(min_effect) / sd, alpha)
    return out


def unpaired_sensitivity(
    va: Sequence[float], vb: Sequence[float], alpha: float, min_effect: float | None = None
) -> dict[str, float]:
    """Detectable difference and replicates per group needed for an unpaired two-sample t-test.

    Args:
        va: values of group A.
        vb: values of group B.
        alpha: the two-sided significance level.
        min_effect: the difference worth detecting, or ``None``.

    Returns:
        As :func:`paired_sensitivity`; ``replicates_needed`` is per group, for equal groups.
    """
    a, b = np.asarray(va, dtype=float), np.asarray(vb, dtype=float)
    if a.size < 2 or b.size < 2:
        return {"detectable_diff": math.nan, "replicates_needed": math.nan}
    pooled = math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    if pooled == 0:
        return {"detectable_diff": math.nan, "replicates_needed": math.nan}
    effect = _effect_at(TTestIndPower(), alpha, nobs1=a.size, ratio=b.size / a.size)
    out = {"detectable_diff": effect * pooled, "replicates_needed": math.nan}
    if min_effect:
        out["replicates_needed"] = _replicates_for(TTestIndPower(), abs(min_effect) / pooled, alpha, ratio=1.0)
    return out


def contrast_sensitivity(se: float, n: int, alpha: float, min_effect: float | None = None) -> dict[str, float]:
    """Detectable size of an unpaired contrast of cell means with standard error ``se``, ``n`` per cell (smallest).

    The contrast is treated as a one-sample test whose per-replicate sd is
    ``se * sqrt(n)``: exact for equal cells, conservative (fewer degrees of
    freedom than Welch-Satterthwaite) otherwise.

    Args:
        se: standard error of the contrast.
        n: replicates in the smallest cell.
        alpha: the two-sided significance level.
        min_effect: the difference worth detecting, or ``None``.
    """
    if n < 2 or not (math.isfinite(se) and se > 0):
        return {"detectable_diff": math.nan, "replicates_needed": math.nan}
    sd = se * math.sqrt(n)
    out = {"detectable_diff": _effect_at(TTestPower(), alpha, nobs=n) * sd, "replicates_needed": math.nan}
    if min_effect:
        out["replicates_needed"] = _replicates_for(TTestPower(), abs(min_effect) / sd, alpha)
    return out


def replicates_text(n: float) -> str:
    """``14`` / ``>100000`` / ``n/a`` for a replicates-needed figure."""
    if isinstance(n, float) and math.isnan(n):
        return "n/a"
    return f">{MAX_REPLICATES}" if math.isinf(n) else str(int(n))


def sensitivity_sentence(detectable: float, needed: float, min_effect: float | None, unit: str) -> str:
    """The clause a non-significant verdict ends with: what this sweep could see, and what more would see.

    Args:
        detectable: the minimum detectable difference.
        needed: replicates per group for ``min_effect``.
        min_effect: ``sweep.min_effect`` or ``None``.
        unit: what is counted, e.g. ``seeds per group``.
    """
    if not math.isfinite(detectable):
        return ""
    text = f" This sweep could detect differences of {detectable:.4f} or more ({POWER:.0%} power)"
    if min_effect and not (isinstance(needed, float) and math.isnan(needed)):
        text += f"; about {replicates_text(needed)} {unit} would detect {abs(min_effect):g}"
    return text + "."
