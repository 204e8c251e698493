"""Statistics of a sweep: t-based CIs of means, pairwise Welch / paired t-tests, Holm's correction.

The tests and their confidence intervals are scipy's own
(``scipy.stats.ttest_ind(equal_var=False)``, ``scipy.stats.ttest_rel`` and
their ``confidence_interval``); the CI of a mean uses the t distribution
(``scipy.stats.t``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from experiments.analysis.equivalence import equivalence_label, equivalence_sentence, tost_paired, tost_welch
from experiments.analysis.formatting import fmt, fmt_p
from experiments.analysis.groups import SEED_KEY, grouped, seeds, value_sort_key
from experiments.analysis.metric import MetricLike, pretty_metric, resolve_metric
from experiments.analysis.power import paired_sensitivity, sensitivity_sentence, unpaired_sensitivity
from experiments.analysis.runs import final_values, finished
from experiments.config.metrics import MetricSpec

CONFIDENCE = 0.95
#: How the verdicts and reports name the effect sizes.
EFFECT_NAMES = {"d_z": "Cohen's d_z", "g": "Hedges' g", "": "effect size"}

_TEST_COLUMNS = [
    "metric",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "welch_p",
    "paired_p",
    "n_pairs",
    "test",
    "p_holm",
    "significant",
    "better",
    "verdict",
    "effect_size",
    "effect_kind",
    "detectable_diff",
    "min_effect",
    "replicates_needed",
    "equivalence_margin",
    "tost_p",
    "tost_p_holm",
    "equivalence",
]


def ci_half_width(std: Any, n: Any, confidence: float = CONFIDENCE) -> Any:
    """Half width of the t-based CI of a mean: ``t(0.5 + confidence/2, n-1) * std / sqrt(n)``.

    Args:
        std: sample standard deviation(s) (ddof=1); scalar or array.
        n: number(s) of values; the half width is NaN where ``n < 2``.
        confidence: two-sided confidence level.
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = np.where(n >= 2, n - 1, np.nan)
        return stats.t.ppf(0.5 + confidence / 2, dof) * np.asarray(std, dtype=float) / np.sqrt(n)


def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """Mean, sample std (ddof=1) and t-based CI half width of the mean.

    Args:
        values: numbers; NaN values are ignored (and not counted in n).
        confidence: two-sided confidence level.

    Returns:
        ``(mean, std, half_width, n)``; std and half width are NaN for n < 2,
        everything is NaN for n = 0.
    """
    arr = np.asarray(list(values), dtype=float)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    std = float(arr.std(ddof=1))
    return mean, std, float(ci_half_width(std, n, confidence)), n


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN inputs stay NaN, are not counted).

    Args:
        pvalues: raw p-values, one per comparison.
    """
    valid = [(p, i) for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    m = len(valid)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def pair_by_replicate(
    a: pd.DataFrame, b: pd.DataFrame, key: str, replicate_key: str = SEED_KEY
) -> tuple[np.ndarray, np.ndarray] | None:
    """Align two groups by seed (the replicate key) when both have exactly the same seeds.

    Args:
        a: runs of group A.
        b: runs of group B.
        key: MLflow metric key.
        replicate_key: the key that pairs runs.

    Returns:
        ``(values_a, values_b)`` in the same seed order, or ``None`` when the
        seed sets differ, a seed is missing or repeated, or a value is NaN.
    """
    sa, sb = seeds(a, replicate_key), seeds(b, replicate_key)
    if sa.isna().any() or sb.isna().any() or sa.duplicated().any() or sb.duplicated().any():
        return None
    if set(sa) != set(sb):
        return None
    va = pd.Series(final_values(a, key).to_numpy(), index=sa.to_numpy())
    vb = pd.Series(final_values(b, key).to_numpy(), index=sb.to_numpy())
    order = sorted(va.index, key=value_sort_key)
    va, vb = va[order], vb[order]
    if va.isna().any() or vb.isna().any():
        return None
    return va.to_numpy(), vb.to_numpy()


def _interval(result: Any) -> tuple[float, float]:
    """The CI of the difference of means of a scipy t-test result.

    Args:
        result: what ``stats.ttest_ind`` / ``stats.ttest_rel`` returned.
    """
    ci = result.confidence_interval(confidence_level=CONFIDENCE)
    return float(ci.low), float(ci.high)


def pairwise_tests(
    df: pd.DataFrame,
    metric: MetricLike = None,
    *,
    mode: str | None = None,
    alpha: float = 0.05,
    replicate_key: str = SEED_KEY,
    min_effect: float | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """Compare every pair of groups on the final test value of a metric with t-tests.

    The decision uses the paired t-test (``scipy.stats.ttest_rel``) when both
    groups ran exactly the same seeds (the seed fixes init and data order, so
    pairing removes that noise), else Welch's t-test
    (``scipy.stats.ttest_ind(equal_var=False)``).  Both p-values are reported.
    With more than one pair, the decision p-value is Holm-adjusted over all
    pairs so that running many comparisons does not manufacture a "winner".

    Args:
        df: runs frame; only FINISHED runs are used.
        metric: the compared metric (base name such as ``accuracy``, its
            ``test_`` key, or a spec); ``None``: the runs' ``layerlab.metric``
            tag (see :func:`experiments.analysis.metric.resolve_metric`).
        mode: ``"max"``/``"min"``; default from the tag or the metric's name.
        alpha: significance level.
        replicate_key: the key that pairs runs and is not a group key (``seed``).
        min_effect: the difference worth detecting (``sweep.min_effect``): replicates needed for it.
        margin: the equivalence margin (``sweep.equivalence_margin``): a TOST per pair.

    Returns:
        One row per pair, columns: ``metric`` (the ``test_`` key),
        ``group_a``, ``group_b``, ``n_a``, ``n_b``, ``mean_a``, ``mean_b``,
        ``diff`` (mean_a - mean_b), ``diff_ci_low``, ``diff_ci_high`` (95% CI
        of the difference, from the deciding test), ``welch_p``, ``paired_p``
        (NaN when not paired), ``n_pairs``, ``test``
        (``paired``/``welch``/``none``), ``p_holm``, ``significant`` (bool),
        ``better`` (label of the better group when significant, else ``""``),
        ``verdict`` (a sentence), ``effect_size`` (Cohen's d_z of the paired
        differences, else Hedges' g), ``effect_kind`` (``d_z``/``g``),
        ``detectable_diff`` (80% power at ``alpha``), ``replicates_needed``
        (for ``min_effect``), ``tost_p``, ``tost_p_holm`` and ``equivalence``
        (``equivalent`` / ``not shown equivalent``; NaN/empty without ``margin``).
    """
    spec = resolve_metric(df, metric, mode)
    fin = finished(df)
    _, labels, groups = grouped(fin, replicate_key)
    options = {"alpha": alpha, "min_effect": min_effect, "margin": margin}
    rows = [
        compare_two(fin[labels == ga], fin[labels == gb], spec.test, ga, gb, replicate_key, **options)
        for (ga, _), (gb, _) in combinations(groups, 2)
    ]
    decide(rows, spec, alpha, replicate_key=replicate_key, min_effect=min_effect, margin=margin)
    return pd.DataFrame(rows, columns=_TEST_COLUMNS)


def hedges_g(va: np.ndarray, vb: np.ndarray) -> float:
    """Hedges' g of two independent samples: Cohen's d (pooled sd) times the small-sample correction.

    Args:
        va: values of group A.
        vb: values of group B.
    """
    na, nb = len(va), len(vb)
    if na < 2 or nb < 2:
        return math.nan
    pooled = math.sqrt(((na - 1) * va.var(ddof=1) + (nb - 1) * vb.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return math.nan
    return float((va.mean() - vb.mean()) / pooled * (1 - 3 / (4 * (na + nb) - 9)))


def cohens_dz(diffs: np.ndarray) -> float:
    """Cohen's d_z of paired differences: their mean over their sd (ddof=1).

    Args:
        diffs: per-replicate differences A - B.
    """
    sd = float(np.std(diffs, ddof=1)) if len(diffs) >= 2 else math.nan
    return float(np.mean(diffs)) / sd if sd and math.isfinite(sd) else math.nan


def compare_two(
    a: pd.DataFrame,
    b: pd.DataFrame,
    key: str,
    ga: str,
    gb: str,
    replicate_key: str = SEED_KEY,
    *,
    alpha: float = 0.05,
    min_effect: float | None = None,
    margin: float | None = None,
) -> dict[str, Any]:
    """One comparison of two sets of runs on the final value of a metric (no decision yet).

    Paired t-test by replicate when both ran the same replicates (effect size
    Cohen's d_z), else Welch's t-test (effect size Hedges' g); both p-values kept.

    Args:
        a: runs of A.
        b: runs of B.
        key: MLflow metric key (``test_<metric>``).
        ga: label of A.
        gb: label of B.
        replicate_key: the key that pairs runs (``seed``).
        alpha: significance level (for the detectable difference).
        min_effect: the difference worth detecting, or ``None``.
        margin: the equivalence margin, or ``None`` (no TOST).

    Returns:
        A row of :func:`pairwise_tests` without ``p_holm``, ``significant``,
        ``better``, ``verdict``, ``tost_p_holm`` and ``equivalence`` (see :func:`decide`).
    """
    va, vb = final_values(a, key).dropna().to_numpy(), final_values(b, key).dropna().to_numpy()
    row: dict[str, Any] = {
        "metric": key,
        "group_a": ga,
        "group_b": gb,
        "n_a": len(va),
        "n_b": len(vb),
        "mean_a": float(va.mean()) if len(va) else math.nan,
        "mean_b": float(vb.mean()) if len(vb) else math.nan,
        "diff_ci_low": math.nan,
        "diff_ci_high": math.nan,
        "welch_p": math.nan,
        "paired_p": math.nan,
        "n_pairs": 0,
        "test": "none",
        "effect_size": math.nan,
        "effect_kind": "",
        "detectable_diff": math.nan,
        "replicates_needed": math.nan,
        "tost_p": math.nan,
        "min_effect": min_effect or math.nan,
        "equivalence_margin": margin or math.nan,
    }
    row["diff"] = row["mean_a"] - row["mean_b"]
    if len(va) >= 2 and len(vb) >= 2:
        welch = stats.ttest_ind(va, vb, equal_var=False)
        row["welch_p"] = float(welch.pvalue)
        row["test"] = "welch"
        row["diff_ci_low"], row["diff_ci_high"] = _interval(welch)
        row["effect_size"], row["effect_kind"] = hedges_g(va, vb), "g"
        row.update(unpaired_sensitivity(va, vb, alpha, min_effect))
        if margin:
            row["tost_p"] = tost_welch(va, vb, margin)
        paired = pair_by_replicate(a, b, key, replicate_key)
        # Identical differences for every replicate: the paired t is undefined (sd 0), so Welch decides.
        if paired is not None and len(paired[0]) >= 2 and np.ptp(paired[0] - paired[1]) > 0:
            rel = stats.ttest_rel(*paired)
            row["n_pairs"] = len(paired[0])
            row["paired_p"] = float(rel.pvalue)
            if math.isfinite(row["paired_p"]):
                row["test"] = "paired"
                row["diff_ci_low"], row["diff_ci_high"] = _interval(rel)
                row["effect_size"], row["effect_kind"] = cohens_dz(paired[0] - paired[1]), "d_z"
                row.update(paired_sensitivity(paired[0] - paired[1], alpha, min_effect))
                if margin:
                    row["tost_p"] = tost_paired(*paired, margin)
    return row


def decide(
    rows: list[dict[str, Any]],
    spec: MetricSpec,
    alpha: float,
    within: Sequence[str] | None = None,
    *,
    replicate_key: str = SEED_KEY,
    min_effect: float | None = None,
    margin: float | None = None,
) -> None:
    """Holm-adjust the deciding (and TOST) p-values of one family of comparisons and write each verdict (in place).

    Args:
        rows: rows of :func:`compare_two`, one family (all pairs, or one factor's comparisons).
        spec: the compared metric.
        alpha: significance level.
        within: per row, the stratum the comparison is made in (e.g. ``model=class_mlp``),
            said before the verdict; ``None`` or ``""``: nothing said.
        replicate_key: what a replicate is called in the verdict (``seed`` -> "seeds").
        min_effect: the difference worth detecting (named in a non-significant verdict), or ``None``.
        margin: the equivalence margin, or ``None``: no equivalence verdict.
    """
    # p-value the decision rests on (NaN when no test was possible/defined).
    decision = [r["paired_p"] if r["test"] == "paired" else r["welch_p"] for r in rows]
    n_tests = sum(math.isfinite(p) for p in decision)
    tost = [r.get("tost_p", math.nan) if margin else math.nan for r in rows]
    n_tost = sum(math.isfinite(p) for p in tost)
    for row, p_adj in zip(rows, holm(tost)):
        row["tost_p_holm"] = p_adj
        row["equivalence"] = equivalence_label(p_adj, alpha) if margin and math.isfinite(row["tost_p"]) else ""
    for i, (row, p_adj) in enumerate(zip(rows, holm(decision))):
        row["p_holm"] = p_adj
        row["significant"] = bool(math.isfinite(p_adj) and p_adj < alpha)
        a_better = spec.better(row["mean_a"], row["mean_b"])
        row["better"] = (row["group_a"] if a_better else row["group_b"]) if row["significant"] else ""
        where = within[i] if within else ""
        row["verdict"] = (f"Within {where}: " if where else "") + _verdict(row, spec, alpha, n_tests)
        if not row["significant"] and math.isfinite(row["p_holm"]):
            row["verdict"] += sensitivity_sentence(
                row["detectable_diff"], row["replicates_needed"], min_effect, f"{replicate_key}s per group"
            )
        if row["equivalence"]:
            row["verdict"] += equivalence_sentence(
                row["equivalence"], margin, row["tost_p"], row["tost_p_holm"], n_tost
            )


def _verdict(row: dict[str, Any], spec: MetricSpec, alpha: float, n_tests: int) -> str:
    """One sentence that states the result of a pairwise comparison.

    Args:
        row: a row of :func:`pairwise_tests` (before the verdict).
        spec: the compared metric.
        alpha: significance level.
        n_tests: number of comparisons the Holm correction covers.
    """
    ga, gb, name = row["group_a"], row["group_b"], pretty_metric(spec.test)
    if row["n_a"] < 2 or row["n_b"] < 2:
        small = ", ".join(f"n={n} in {g}" for g, n in ((ga, row["n_a"]), (gb, row["n_b"])) if n < 2)
        return f"{ga} vs {gb} on {name}: test not possible ({small}; need at least 2 finished runs per group)."
    if row["test"] == "none" or not math.isfinite(row["welch_p"] if row["test"] == "welch" else row["paired_p"]):
        return (
            f"{ga} vs {gb} on {name}: test not possible (no variance in either group; "
            f"means {fmt(row['mean_a'])} and {fmt(row['mean_b'])})."
        )
    ps = [f"Welch p={fmt_p(row['welch_p'])}"]
    if row["test"] == "paired":
        ps = [f"paired p={fmt_p(row['paired_p'])} over {row['n_pairs']} seeds"] + ps
    if n_tests > 1:
        ps.append(f"Holm-adjusted p={fmt_p(row['p_holm'])} over {n_tests} comparisons")
    if math.isfinite(row.get("effect_size", math.nan)):
        ps.append(f"{EFFECT_NAMES[row['effect_kind']]}={row['effect_size']:.2f}")
    ptext = ", ".join(ps)
    if row["significant"]:
        a_better = spec.better(row["mean_a"], row["mean_b"])
        better, worse = (ga, gb) if a_better else (gb, ga)
        # Express the gap and its CI as "better minus worse" in the good direction.
        sign = 1 if a_better == spec.higher_is_better else -1
        lo, hi = sorted((sign * row["diff_ci_low"], sign * row["diff_ci_high"]))
        direction = "higher" if spec.higher_is_better else "lower"
        return (
            f"{better} is better than {worse} on {name} by {fmt(abs(row['diff']))} ({direction}; "
            f"95% CI {fmt(lo)} to {fmt(hi)}), significant at alpha={alpha:g} ({ptext})."
        )
    return (
        f"No significant difference between {ga} and {gb} on {name} at alpha={alpha:g}: "
        f"difference of means {row['diff']:+.4f} ({ga} minus {gb}; 95% CI {fmt(row['diff_ci_low'])} "
        f"to {fmt(row['diff_ci_high'])}), {ptext}."
    )
