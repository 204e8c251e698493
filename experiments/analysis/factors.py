"""Comparisons along each swept factor (simple effects) and between two factors (interaction).

A sweep such as ``model=lambda_mlp,class_mlp model.activation=abs,relu seed=0..4``
has two factors and a replicate key.  :func:`factor_tests` compares the levels
of one factor *within* each combination of the other factors (abs vs relu
within ``model=class_mlp``, and within ``model=lambda_mlp``): a paired t-test
by replicate when both cells ran the same replicates (Cohen's d_z), else
Welch's (Hedges' g); Holm's correction runs over the comparisons of one
factor (its family).  :func:`interaction_tests` asks whether the difference
along one factor changes with another: the difference of differences, its 95%
CI and p-value (a one-sample t-test of the per-replicate differences of
differences when paired, else a Welch-Satterthwaite t on the four cell means),
Holm-adjusted over the interaction family.  Every row also says what the
sweep could detect (:mod:`experiments.analysis.power`) and, with an
equivalence margin, whether the difference is shown to lie within it
(:mod:`experiments.analysis.equivalence`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import combinations, groupby
from typing import Any

import pandas as pd
from scipy import stats

from experiments.analysis.equivalence import equivalence_label, equivalence_sentence, tost_from_estimate, tost_paired
from experiments.analysis.formatting import fmt, fmt_p
from experiments.analysis.groups import SEED_KEY, group_columns, key_values, seeds, value_sort_key
from experiments.analysis.metric import MetricLike, pretty_metric, resolve_metric
from experiments.analysis.power import contrast_sensitivity, paired_sensitivity, sensitivity_sentence
from experiments.analysis.runs import final_values, finished
from experiments.analysis.stats import CONFIDENCE, compare_two, decide, holm
from experiments.config.metrics import MetricSpec
from experiments.errors import LayerlabError

INTERACTION_COLUMNS = [
    "factor",
    "by",
    "within",
    "level_a",
    "level_b",
    "by_a",
    "by_b",
    "diff_at_a",
    "diff_at_b",
    "dd",
    "dd_ci_low",
    "dd_ci_high",
    "p",
    "n_pairs",
    "test",
    "p_holm",
    "significant",
    "detectable_diff",
    "min_effect",
    "replicates_needed",
    "equivalence_margin",
    "tost_p",
    "tost_p_holm",
    "equivalence",
    "verdict",
]


def compared_factors(swept: Sequence[str], compare_by: Sequence[str] | None) -> list[str]:
    """The factors to compare along: ``compare_by`` (checked against the swept keys), else every swept key.

    Args:
        swept: the swept keys (:func:`experiments.analysis.groups.group_columns`).
        compare_by: ``sweep.compare_by``; ``None`` or empty: all.

    Raises:
        LayerlabError: a name in ``compare_by`` was not swept.
    """
    if not compare_by:
        return list(swept)
    unknown = [k for k in compare_by if k not in swept]
    if unknown:
        raise LayerlabError(
            f"{', '.join(map(repr, unknown))} {'was' if len(unknown) == 1 else 'were'} not swept with more than one "
            f"value in this sweep (swept: {', '.join(swept) or 'nothing but the replicate key'})",
            path="sweep.compare_by",
            value=list(compare_by),
            fix=f"name swept keys only, e.g. sweep.compare_by=[{swept[0] if swept else 'model.activation'}], "
            "or leave it null to compare along every swept key",
        )
    return [k for k in swept if k in compare_by]


def _levels(table: pd.DataFrame, key: str) -> list[str]:
    return sorted(table[key].unique(), key=value_sort_key)


def _strata(table: pd.DataFrame, keys: Sequence[str]) -> list[dict[str, str]]:
    """Every combination of values of ``keys`` present in ``table``, sorted (one empty one without keys)."""
    if not keys:
        return [{}]
    combos = [dict(r) for _, r in table[list(keys)].drop_duplicates().iterrows()]
    return sorted(combos, key=lambda c: tuple(value_sort_key(c[k]) for k in keys))


def _mask(table: pd.DataFrame, where: dict[str, str]) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for k, v in where.items():
        mask &= table[k] == v
    return mask


def _label(where: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def simple_effects(
    fin: pd.DataFrame, replicate_key: str = SEED_KEY, compare_by: Sequence[str] | None = None
) -> Iterator[tuple[str, str, str, str, pd.DataFrame, pd.DataFrame]]:
    """Every simple effect of a sweep, factor by factor: ``(factor, within, level_a, level_b, runs_a, runs_b)``.

    Args:
        fin: the FINISHED runs.
        replicate_key: the key whose values are replicates.
        compare_by: the factors to compare along (``None``: every swept key).
    """
    swept = group_columns(fin, replicate_key)
    table = key_values(fin, swept)
    for factor in compared_factors(swept, compare_by):
        for stratum in _strata(table, [k for k in swept if k != factor]):
            cell = _mask(table, stratum)
            for la, lb in combinations(_levels(table[cell], factor), 2):
                yield (
                    factor,
                    _label(stratum),
                    la,
                    lb,
                    fin[cell & (table[factor] == la)],
                    fin[cell & (table[factor] == lb)],
                )


def factor_tests(
    df: pd.DataFrame,
    metric: MetricLike = None,
    *,
    mode: str | None = None,
    alpha: float = 0.05,
    replicate_key: str = SEED_KEY,
    compare_by: Sequence[str] | None = None,
    min_effect: float | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """Compare the levels of each factor within each combination of the other factors.

    Args:
        df: runs frame; only FINISHED runs are used.
        metric: the compared metric (see :func:`experiments.analysis.metric.resolve_metric`).
        mode: ``"max"``/``"min"``.
        alpha: significance level.
        replicate_key: the key whose values are replicates (pairs the runs).
        compare_by: the factors to compare along (``None``: every swept key).
        min_effect: the difference worth detecting (``sweep.min_effect``), or ``None``.
        margin: the equivalence margin (``sweep.equivalence_margin``), or ``None``.

    Returns:
        One row per (factor, stratum, pair of levels): ``factor``, ``within``
        (e.g. ``model=class_mlp``; ``""`` with one factor), ``level_a``,
        ``level_b``, then the columns of
        :func:`experiments.analysis.stats.pairwise_tests` (``group_a`` is
        ``factor=level_a``; ``p_holm`` is adjusted within the factor's family).
    """
    spec = resolve_metric(df, metric, mode)
    fin = finished(df)
    frames = []
    for factor, effects in groupby(simple_effects(fin, replicate_key, compare_by), key=lambda e: e[0]):
        rows, within = [], []
        for _, where, la, lb, a, b in effects:
            row = compare_two(
                a,
                b,
                spec.test,
                f"{factor}={la}",
                f"{factor}={lb}",
                replicate_key,
                alpha=alpha,
                min_effect=min_effect,
                margin=margin,
            )
            rows.append({"factor": factor, "within": where, "level_a": la, "level_b": lb, **row})
            within.append(where)
        decide(rows, spec, alpha, within, replicate_key=replicate_key, min_effect=min_effect, margin=margin)
        frames.append(pd.DataFrame(rows))
    if not frames or all(f.empty for f in frames):
        return pd.DataFrame(columns=["factor", "within", "level_a", "level_b", "verdict"])
    return pd.concat(frames, ignore_index=True)


def _cell_values(fin: pd.DataFrame, mask: pd.Series, key: str, replicate_key: str) -> pd.Series:
    """Final values of one cell indexed by replicate (duplicates or unknown replicates: empty)."""
    sub = fin[mask]
    reps = seeds(sub, replicate_key)
    values = pd.Series(final_values(sub, key).to_numpy(), index=reps.to_numpy()).dropna()
    if reps.isna().any() or reps.duplicated().any():
        return pd.Series(dtype=float)
    return values


def _difference_of_differences(
    cells: list[pd.Series], alpha: float, min_effect: float | None, margin: float | None
) -> dict[str, Any]:
    """(a,x) - (b,x) - ((a,y) - (b,y)) with its CI and p-value, paired by replicate when possible.

    Args:
        cells: final values of the cells (a,x), (b,x), (a,y), (b,y), indexed by replicate.
        alpha: significance level (for the detectable difference).
        min_effect: the difference worth detecting, or ``None``.
        margin: the equivalence margin, or ``None``.
    """
    common = set(cells[0].index)
    for c in cells[1:]:
        common &= set(c.index)
    paired = len(common) >= 2 and all(len(c) == len(common) for c in cells)
    means = [float(c.mean()) if len(c) else math.nan for c in cells]
    out = {
        "diff_at_a": means[0] - means[1],
        "diff_at_b": means[2] - means[3],
        "n_pairs": 0,
        "dd_ci_low": math.nan,
        "dd_ci_high": math.nan,
        "p": math.nan,
        "test": "none",
        "detectable_diff": math.nan,
        "replicates_needed": math.nan,
        "tost_p": math.nan,
        "min_effect": min_effect or math.nan,
        "equivalence_margin": margin or math.nan,
    }
    out["dd"] = out["diff_at_a"] - out["diff_at_b"]
    if paired:
        order = sorted(common, key=value_sort_key)
        x = [c[order].to_numpy(dtype=float) for c in cells]
        dd = (x[0] - x[1]) - (x[2] - x[3])
        res = stats.ttest_1samp(dd, 0.0)
        if math.isfinite(float(res.pvalue)):
            ci = res.confidence_interval(confidence_level=CONFIDENCE)
            out.update(
                n_pairs=len(dd),
                p=float(res.pvalue),
                test="paired",
                dd_ci_low=float(ci.low),
                dd_ci_high=float(ci.high),
                **paired_sensitivity(dd, alpha, min_effect),
            )
            if margin:
                out["tost_p"] = tost_paired(dd, [0.0] * len(dd), margin)
        return out
    if all(len(c) >= 2 for c in cells):
        terms = [float(c.var(ddof=1)) / len(c) for c in cells]
        se = math.sqrt(sum(terms))
        if se > 0:
            dof = se**4 / sum(t**2 / (len(c) - 1) for t, c in zip(terms, cells))
            half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof)) * se
            out.update(
                p=float(2 * stats.t.sf(abs(out["dd"]) / se, dof)),
                test="welch",
                dd_ci_low=out["dd"] - half,
                dd_ci_high=out["dd"] + half,
                **contrast_sensitivity(se, min(len(c) for c in cells), alpha, min_effect),
            )
            if margin:
                out["tost_p"] = tost_from_estimate(out["dd"], se, dof, margin)
    return out


def interaction_tests(
    df: pd.DataFrame,
    metric: MetricLike = None,
    *,
    mode: str | None = None,
    alpha: float = 0.05,
    replicate_key: str = SEED_KEY,
    compare_by: Sequence[str] | None = None,
    min_effect: float | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """Does the difference along one factor change with another? (difference of differences).

    For each compared factor and each other swept factor (each unordered pair
    once), for each pair of levels of both, within each combination of the
    remaining factors.  Holm's correction runs over all these rows.

    Args:
        df: runs frame; only FINISHED runs are used.
        metric: the compared metric.
        mode: ``"max"``/``"min"``.
        alpha: significance level.
        replicate_key: the key that pairs runs.
        compare_by: the compared factors (``None``: every swept key).
        min_effect: the difference of differences worth detecting, or ``None``.
        margin: the equivalence margin, or ``None``.

    Returns:
        Columns :data:`INTERACTION_COLUMNS`: ``diff_at_a`` is mean(level_a) -
        mean(level_b) at ``by=by_a``, ``diff_at_b`` the same at ``by_b``,
        ``dd`` their difference, ``p`` the raw p-value (empty frame with fewer
        than two factors).
    """
    spec = resolve_metric(df, metric, mode)
    fin = finished(df)
    swept = group_columns(fin, replicate_key)
    table = key_values(fin, swept)
    compared = compared_factors(swept, compare_by)
    rows = []
    done: set[frozenset] = set()
    # The last swept key is phrased as the contrast (model=a,b model.activation=abs,relu: "the abs-minus-relu
    # difference, between the models"); the test is symmetric, so each pair of factors is tested once.
    for factor in reversed(compared):
        for by in (k for k in swept if k != factor):
            if frozenset((factor, by)) in done:
                continue
            done.add(frozenset((factor, by)))
            rest = [k for k in swept if k not in (factor, by)]
            for stratum in _strata(table, rest):
                cell = _mask(table, stratum)
                for la, lb in combinations(_levels(table[cell], factor), 2):
                    for xa, xb in combinations(_levels(table[cell], by), 2):
                        masks = [cell & (table[factor] == lv) & (table[by] == bv) for bv in (xa, xb) for lv in (la, lb)]
                        values = [_cell_values(fin, m, spec.test, replicate_key) for m in masks]
                        rows.append(
                            {
                                "factor": factor,
                                "by": by,
                                "within": _label(stratum),
                                "level_a": la,
                                "level_b": lb,
                                "by_a": xa,
                                "by_b": xb,
                                **_difference_of_differences(values, alpha, min_effect, margin),
                            }
                        )
    tost = [r["tost_p"] for r in rows]
    n_tost = sum(math.isfinite(p) for p in tost)
    for row, p_adj, t_adj in zip(rows, holm([r["p"] for r in rows]), holm(tost)):
        row["p_holm"], row["tost_p_holm"] = p_adj, t_adj
        row["significant"] = bool(math.isfinite(p_adj) and p_adj < alpha)
        row["equivalence"] = equivalence_label(t_adj, alpha) if margin and math.isfinite(row["tost_p"]) else ""
        row["verdict"] = _interaction_verdict(row, spec, alpha, len(rows))
        if not row["significant"] and row["test"] != "none":
            # Each cell runs every replicate (paired) or its own ones (unpaired): either way, counted per cell.
            row["verdict"] += sensitivity_sentence(
                row["detectable_diff"], row["replicates_needed"], min_effect, f"{replicate_key}s per cell"
            )
        if row["equivalence"]:
            row["verdict"] += equivalence_sentence(
                row["equivalence"], margin, row["tost_p"], row["tost_p_holm"], n_tost
            )
    return pd.DataFrame(rows, columns=INTERACTION_COLUMNS)


def _interaction_verdict(row: dict[str, Any], spec: MetricSpec, alpha: float, n_tests: int) -> str:
    """One sentence on one interaction contrast."""
    f, by, name = row["factor"], row["by"], pretty_metric(spec.test)
    contrast = f"the {row['level_a']}-minus-{row['level_b']} difference in {name}"
    where = f" (within {row['within']})" if row["within"] else ""
    at = f"{fmt(row['diff_at_a'])} at {by}={row['by_a']}, {fmt(row['diff_at_b'])} at {by}={row['by_b']}"
    if row["test"] == "none":
        return (
            f"Interaction {f} x {by}{where}: {contrast} is {at}; test not possible "
            "(need at least 2 replicates per cell, or variance)."
        )
    ptext = f"p={fmt_p(row['p'])}" + ("" if row["test"] == "paired" else " (Welch-Satterthwaite, unpaired)")
    if n_tests > 1:
        ptext += f", Holm-adjusted p={fmt_p(row['p_holm'])} over {n_tests} contrasts"
    ci = f"difference of differences {row['dd']:+.4f}, 95% CI {fmt(row['dd_ci_low'])} to {fmt(row['dd_ci_high'])}"
    if row["significant"]:
        return (
            f"Interaction {f} x {by}{where}: {contrast} depends on {by} ({at}; {ci}; {ptext}), "
            f"significant at alpha={alpha:g}."
        )
    return f"No significant interaction {f} x {by}{where} at alpha={alpha:g}: {contrast} is {at} ({ci}; {ptext})."


def all_verdicts(factors: pd.DataFrame, interactions: pd.DataFrame, pairs: pd.DataFrame | None = None) -> list[str]:
    """The verdicts in reading order: factor comparisons, interactions, then all pairs (when asked for)."""
    out = list(factors["verdict"]) if len(factors) else []
    out += list(interactions["verdict"]) if len(interactions) else []
    out += list(pairs["verdict"]) if pairs is not None and len(pairs) else []
    return out
