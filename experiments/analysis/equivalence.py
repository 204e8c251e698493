"""Equivalence within a margin: two one-sided tests (TOST), the same pairing as the main test.

"No significant difference" is not "the same".  With ``sweep.equivalence_margin=d``
each comparison also tests whether the true difference lies inside ``(-d, +d)``:
both one-sided nulls (difference <= -d, difference >= +d) must be rejected, and
the TOST p-value is the larger of the two one-sided p-values.  Simple effects
use statsmodels' ``ttost_paired`` (paired by replicate) or ``ttost_ind`` with
unequal variances (Welch); an interaction's difference of differences uses the
paired form on its per-replicate values, else scipy's t distribution with the
Welch-Satterthwaite degrees of freedom of the main test.  Holm's correction
runs per family, as for the main tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from experiments.analysis.formatting import fmt_p

EQUIVALENT = "equivalent"
NOT_SHOWN = "not shown equivalent"


def tost_paired(a: Sequence[float], b: Sequence[float], margin: float) -> float:
    """TOST p-value that the mean paired difference A - B lies within ``(-margin, +margin)``."""
    try:
        return float(ttost_paired(np.asarray(a, float), np.asarray(b, float), -margin, margin)[0])
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return math.nan


def tost_welch(a: Sequence[float], b: Sequence[float], margin: float) -> float:
    """TOST p-value for mean(A) - mean(B) within ``(-margin, +margin)``, unequal variances (Welch)."""
    try:
        return float(ttost_ind(np.asarray(a, float), np.asarray(b, float), -margin, margin, usevar="unequal")[0])
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return math.nan


def tost_from_estimate(estimate: float, se: float, dof: float, margin: float) -> float:
    """TOST p-value of an estimate with a t-distributed error (``se``, ``dof``), e.g. a Welch-Satterthwaite contrast."""
    if not (math.isfinite(se) and se > 0 and math.isfinite(dof)):
        return math.nan
    lower = stats.t.sf((estimate + margin) / se, dof)  # H0: difference <= -margin
    upper = stats.t.cdf((estimate - margin) / se, dof)  # H0: difference >= +margin
    return float(max(lower, upper))


def equivalence_label(p_holm: float, alpha: float) -> str:
    """``equivalent`` when the Holm-adjusted TOST p-value is below alpha, else ``not shown equivalent``."""
    return EQUIVALENT if math.isfinite(p_holm) and p_holm < alpha else NOT_SHOWN


def equivalence_sentence(label: str, margin: float, p: float, p_holm: float, n_tests: int) -> str:
    """The verdict's equivalence clause, e.g. `` Equivalent within ±0.005 (TOST p=0.01, Holm-adjusted 0.02).``"""
    holm = f", Holm-adjusted {fmt_p(p_holm)} over {n_tests}" if n_tests > 1 else ""
    head = "Equivalent" if label == EQUIVALENT else "Not shown equivalent"
    return f" {head} within ±{margin:g} (TOST p={fmt_p(p)}{holm})."
