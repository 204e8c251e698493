"""The factor-wise comparison as text: markdown sections, a terminal table, and the sweep's short description.

The description (:func:`description_markdown`) is what a person reads first:
the sweep's parent run shows it on its page in the MLflow UI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from experiments.analysis.formatting import fmt, fmt_p, markdown_table, text_table
from experiments.analysis.metric import pretty_metric
from experiments.analysis.power import POWER, replicates_text
from experiments.analysis.stats import EFFECT_NAMES
from experiments.analysis.summarize import metric_columns, summary_metric

FACTOR_NOTE = (
    "Each factor's levels are compared within each combination of the other swept keys (simple effects): "
    "a paired t-test by replicate when both cells ran the same replicates (effect size Cohen's d_z = mean "
    "difference / sd of the differences), else Welch's t-test (Hedges' g). Holm's correction runs within "
    "each factor's family of comparisons."
)
INTERACTION_NOTE = (
    "Interaction: does the difference along one factor change with the other? Difference of differences "
    "per replicate, one-sample t-test (paired), else Welch-Satterthwaite on the four cell means; Holm over "
    "the contrasts."
)
REACH_NOTE = (
    f"Detectable: the smallest true difference the same test would find with {POWER:.0%} power at the sweep's "
    "alpha, from the observed spread (statsmodels' t-test power; paired on the differences, else two-sample). "
    "n for min effect: replicates per group (per cell for interactions) for sweep.min_effect at that power. "
    "Equivalent: two one-sided tests (TOST) within ±sweep.equivalence_margin, Holm per family."
)


def _has(frame: pd.DataFrame | None, column: str) -> bool:
    """Whether any row of ``frame`` has a value in ``column`` (min effect / margin set)."""
    return frame is not None and column in frame.columns and bool(frame[column].notna().any())


def _reach_header(frame: pd.DataFrame | None) -> list[str]:
    """The columns on what the sweep could see: always the detectable difference, the others when asked for."""
    if frame is None or "detectable_diff" not in frame.columns:
        return []
    return [
        f"detectable ({POWER:.0%} power)",
        *(["n for min effect"] if _has(frame, "min_effect") else []),
        *(["equivalent (TOST)"] if _has(frame, "equivalence_margin") else []),
    ]


def _reach_cells(frame: pd.DataFrame, r: pd.Series) -> list[str]:
    """One row's cells under :func:`_reach_header`."""
    if "detectable_diff" not in frame.columns:
        return []
    cells = [fmt(r["detectable_diff"])]
    if _has(frame, "min_effect"):
        cells.append(f"{replicates_text(r['replicates_needed'])} for {r['min_effect']:g}")
    if _has(frame, "equivalence_margin"):
        holm = fmt_p(r["tost_p_holm"])
        cells.append(
            f"{'yes' if r['equivalence'] == 'equivalent' else 'not shown'} ±{r['equivalence_margin']:g} (Holm p {holm})"
            if r["equivalence"]
            else "n/a"
        )
    return cells


def _effect(row: pd.Series) -> str:
    value = row.get("effect_size", math.nan)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{EFFECT_NAMES.get(str(row.get('effect_kind', '')), 'effect')} {value:.2f}"


def _p(row: pd.Series) -> str:
    return fmt_p(row["paired_p"] if row["test"] == "paired" else row["welch_p"])


def factor_rows(tests: pd.DataFrame) -> list[list[str]]:
    """The rows of the factor table (shared by the report, the description and the terminal)."""
    return [
        [
            str(r["factor"]),
            str(r["within"]) or "(all runs)",
            f"{r['level_a']} − {r['level_b']}",
            f"{r['diff']:+.4f} ({fmt(r['diff_ci_low'])} to {fmt(r['diff_ci_high'])})",
            _effect(r),
            f"{r['test']} ({int(r['n_pairs'])} pairs)" if r["test"] == "paired" else str(r["test"]),
            _p(r),
            fmt_p(r["p_holm"]),
            "yes" if r["significant"] else "no",
            *_reach_cells(tests, r),
        ]
        for _, r in tests.iterrows()
    ]


FACTOR_HEADER = [
    "factor",
    "within",
    "A − B",
    "mean difference (95% CI)",
    "effect size",
    "test",
    "p",
    "Holm p",
    "significant",
]
INTERACTION_HEADER = [
    "contrast",
    "by",
    "difference at each",
    "difference of differences (95% CI)",
    "p",
    "Holm p",
    "significant",
]


def factor_header(tests: pd.DataFrame) -> list[str]:
    """The factor table's header: the fixed columns, then what the sweep could see."""
    return FACTOR_HEADER + _reach_header(tests)


def interaction_header(inter: pd.DataFrame | None) -> list[str]:
    """The interaction table's header."""
    return INTERACTION_HEADER + _reach_header(inter)


def interaction_rows(inter: pd.DataFrame) -> list[list[str]]:
    """The rows of the interaction table."""
    return [
        [
            f"{r['factor']}: {r['level_a']} − {r['level_b']}" + (f" (within {r['within']})" if r["within"] else ""),
            f"{r['by']}: {r['by_a']} vs {r['by_b']}",
            f"{fmt(r['diff_at_a'])} vs {fmt(r['diff_at_b'])}",
            f"{r['dd']:+.4f} ({fmt(r['dd_ci_low'])} to {fmt(r['dd_ci_high'])})",
            fmt_p(r["p"]),
            fmt_p(r["p_holm"]),
            "yes" if r["significant"] else "no",
            *_reach_cells(inter, r),
        ]
        for _, r in inter.iterrows()
    ]


def factor_sections(tests: pd.DataFrame, interactions: pd.DataFrame | None) -> list[str]:
    """Markdown lines: the factor comparisons, the interactions and all their verdicts."""
    lines = ["## Comparisons along each factor", ""]
    if tests.empty:
        return lines + ["Only one group: nothing to compare.", ""]
    metric = pretty_metric(str(tests["metric"].iloc[0]))
    lines += [
        FACTOR_NOTE + f" Compared: {metric}. " + REACH_NOTE,
        "",
        markdown_table(factor_header(tests), factor_rows(tests)),
        "",
    ]
    verdicts = list(tests["verdict"])
    if interactions is not None and len(interactions):
        lines += [
            "## Interaction",
            "",
            INTERACTION_NOTE,
            "",
            markdown_table(interaction_header(interactions), interaction_rows(interactions)),
            "",
        ]
        verdicts += list(interactions["verdict"])
    return lines + ["### Verdicts", "", *[f"- {v}" for v in verdicts], ""]


def render_factor_table(tests: pd.DataFrame, interactions: pd.DataFrame | None, width: int | None = None) -> str:
    """The factor comparisons (and interactions) as fixed-width text for the terminal (``width``: its columns;
    wider cells wrap at spaces)."""
    blocks = []
    for header, rows in (
        (factor_header(tests), factor_rows(tests)),
        (interaction_header(interactions), interaction_rows(interactions) if interactions is not None else []),
    ):
        if not rows:
            continue
        blocks.append(text_table(header, rows, width))
    return "\n\n".join(blocks)


def _pm(row: pd.Series, prefix: str) -> str:
    mean, half = row[f"{prefix}_mean"], row[f"{prefix}_ci95"]
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.4f} ± {half:.4f}" if math.isfinite(half) else f"{mean:.4f}"


def description_markdown(
    summary: pd.DataFrame,
    tests: pd.DataFrame,
    interactions: pd.DataFrame | None,
    *,
    title: str,
    best: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The short Markdown a person reads on the sweep's parent run: groups, comparisons, verdicts in words.

    Args:
        summary: output of :func:`experiments.analysis.summarize.summarize`.
        tests: output of :func:`experiments.analysis.factors.factor_tests`.
        interactions: output of :func:`experiments.analysis.factors.interaction_tests`.
        title: the first line.
        best: a sentence on the best run (by the validation metric), if any.
        extra: more lines at the end (where the full report is).
    """
    spec = summary_metric(summary)
    cols = metric_columns(spec)
    test_p, val_p = next(p for p in cols if p.startswith("test_")), next(iter(cols))
    lines = [
        f"## {title}",
        "",
        markdown_table(
            ["group", "n", f"{pretty_metric(spec.test)} (± 95% CI)", f"{pretty_metric(spec.val)}"],
            [[r["group"], int(r["n"]), _pm(r, test_p), _pm(r, val_p)] for _, r in summary.iterrows()],
        ),
        "",
    ]
    if len(tests):
        lines += ["### Comparisons along each factor", "", markdown_table(factor_header(tests), factor_rows(tests)), ""]
    if interactions is not None and len(interactions):
        lines += [
            "### Interaction",
            "",
            markdown_table(interaction_header(interactions), interaction_rows(interactions)),
            "",
        ]
    verdicts = list(tests["verdict"]) if len(tests) else []
    verdicts += list(interactions["verdict"]) if interactions is not None and len(interactions) else []
    lines += ["### Verdicts", "", *([f"- {v}" for v in verdicts] or ["- Only one group: nothing to compare."]), ""]
    if best:
        lines += [best, ""]
    return "\n".join([*lines, *extra]).rstrip() + "\n"
