"""The comparison as text: a terminal table, and a markdown report with CSV files (:func:`write_report`)."""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.analysis.factor_report import factor_sections
from experiments.analysis.formatting import fmt, fmt_p, text_table
from experiments.analysis.formatting import markdown_table as _markdown_table
from experiments.analysis.groups import OVERRIDES_COLUMN, parse_overrides
from experiments.analysis.metric import pretty_metric
from experiments.analysis.summarize import metric_columns, summary_metric

CI_NOTE = "± = half width of the 95% CI of the mean (t distribution); FINISHED runs only."


def _mean_pm(row: pd.Series, prefix: str, with_std: bool = False) -> str:
    """``mean ± ci95`` (and ``sd std``) for one summary cell.

    Args:
        row: a summary row.
        prefix: summary column prefix (``test_acc``...).
        with_std: also show the std.
    """
    mean, half, std = row[f"{prefix}_mean"], row[f"{prefix}_ci95"], row[f"{prefix}_std"]
    if not math.isfinite(mean):
        return "n/a"
    text = f"{mean:.4f} ± {half:.4f}" if math.isfinite(half) else f"{mean:.4f} (n<2, no CI)"
    if with_std and math.isfinite(std):
        text += f" (sd {std:.4f})"
    return text


def _epochs_cell(row: pd.Series) -> str:
    """``mean (reached/total)`` for the epochs-to-target column.

    Args:
        row: a summary row.
    """
    total = int(row["n_reached_target"] + row["n_missed_target"])
    mean = row["epochs_to_target_mean"]
    head = f"{mean:.1f}" if math.isfinite(mean) else "never"
    return f"{head} ({int(row['n_reached_target'])}/{total} reached)"


def _target(summary: pd.DataFrame) -> float | None:
    """The target of a summary, ``None`` when none was set.

    Args:
        summary: output of :func:`experiments.analysis.summarize.summarize`.
    """
    value = summary["target"].iloc[0]
    return None if value is None or pd.isna(value) else float(value)


def render_table(summary: pd.DataFrame, width: int | None = None) -> str:
    """The summary as a fixed-width text table for the terminal.

    Args:
        summary: output of :func:`experiments.analysis.summarize.summarize`.
        width: the terminal's columns (wider cells wrap at spaces); None: one line per group.
    """
    columns = list(metric_columns(summary_metric(summary)))
    shown = [p for p in columns if p.startswith("test_")] + columns[:1]  # test values, then the val metric
    target = _target(summary)
    header = ["group", "n", *(p.replace("_", " ") for p in shown)]
    header += [f"epochs to {target:g}"] if target is not None else []
    header.append("s/epoch")
    rows = [
        [str(r["group"]), str(int(r["n"])), *(_mean_pm(r, p) for p in shown)]
        + ([_epochs_cell(r)] if target is not None else [])
        + [fmt(r["epoch_time_s_mean"], 2)]
        for _, r in summary.iterrows()
    ]
    return text_table(header, rows, width) + "\n" + CI_NOTE


def rerun_command(overrides: Any) -> str:
    """The command that reruns one job: ``python runner.py <overrides>``.

    Args:
        overrides: the ``layerlab.overrides`` cell (JSON list or list).
    """
    parts = parse_overrides(overrides)
    # shlex.quote leaves plain overrides untouched and quotes [..], spaces, etc.
    return " ".join(["python", "runner.py", *(shlex.quote(p) for p in parts)])


def _summary_section(summary: pd.DataFrame) -> list[str]:
    """The markdown lines of the summary table.

    Args:
        summary: output of :func:`experiments.analysis.summarize.summarize`.
    """
    spec = summary_metric(summary)
    columns = metric_columns(spec)
    target = _target(summary)
    direction = "higher" if spec.higher_is_better else "lower"
    header = ["group", "n", *(pretty_metric(key) for key in columns.values())]
    header += [f"epochs to {pretty_metric(spec.val)} {target:g}"] if target is not None else []
    header.append("s/epoch")
    rows = [
        [r["group"], int(r["n"]), *(_mean_pm(r, p, True) for p in columns)]
        + ([_epochs_cell(r)] if target is not None else [])
        + [fmt(r["epoch_time_s_mean"], 2)]
        for _, r in summary.iterrows()
    ]
    lines = [
        "## Summary",
        "",
        f"Compared metric: `{spec.test}` ({direction} is better). "
        "Mean ± half width of the 95% confidence interval of the mean (t distribution), "
        "sd = sample standard deviation (ddof=1). Only FINISHED runs are included.",
        "",
        _markdown_table(header, rows),
        "",
    ]
    if target is not None:
        lines += [
            f"Epochs to target: epochs until {pretty_metric(spec.val)} first reached {target:g}, mean over the "
            "runs that reached it; runs that never did are counted in the denominator, not dropped.",
            "",
        ]
    return lines


def _tests_section(tests: pd.DataFrame, heading: str = "## Pairwise tests") -> list[str]:
    """The markdown lines of the pairwise tests and their verdicts.

    Args:
        tests: output of :func:`experiments.analysis.stats.pairwise_tests`.
        heading: the section's heading.
    """
    lines = [heading, ""]
    if tests.empty:
        return lines + ["Only one group: nothing to compare.", ""]
    return lines + [
        "Welch's t-test (unequal variances) for every pair; a paired t-test by seed when both groups "
        "ran the same seeds, which then decides. With several pairs, the deciding p-value is "
        "Holm-adjusted.",
        "",
        _markdown_table(
            ["A", "B", "metric", "mean A", "mean B", "A − B (95% CI)", "Welch p", "paired p", "Holm p", "significant"],
            [
                [
                    r["group_a"],
                    r["group_b"],
                    pretty_metric(r["metric"]),
                    fmt(r["mean_a"]),
                    fmt(r["mean_b"]),
                    f"{fmt(r['diff'])} ({fmt(r['diff_ci_low'])} to {fmt(r['diff_ci_high'])})",
                    fmt_p(r["welch_p"]),
                    fmt_p(r["paired_p"]),
                    fmt_p(r["p_holm"]),
                    "yes" if r["significant"] else "no",
                ]
                for _, r in tests.iterrows()
            ],
        ),
        "",
        "### Verdicts",
        "",
        *[f"- {v}" for v in tests["verdict"]],
        "",
    ]


def _failed_section(failed: pd.DataFrame | None) -> list[str]:
    """The markdown lines listing the runs that did not finish, with their rerun commands.

    Args:
        failed: the runs that did not finish, or ``None``.
    """
    lines = ["## Failed runs", ""]
    if failed is None or len(failed) == 0:
        return lines + ["None: every run finished.", ""]
    rows = []
    for _, r in failed.iterrows():
        name = r.get("tags.mlflow.runName")
        overrides = r.get(OVERRIDES_COLUMN)
        rerun = f"`{rerun_command(overrides)}`" if parse_overrides(overrides) else "(overrides not recorded)"
        rows.append([name if isinstance(name, str) else "", r.get("run_id", ""), r.get("status", ""), rerun])
    return lines + [
        "Excluded from the statistics above. Rerun each with the command shown.",
        "",
        _markdown_table(["run", "run id", "status", "rerun"], rows),
        "",
    ]


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (for markdown image links).

    Args:
        path: the file.
        base: the report folder.
    """
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def write_report(
    summary: pd.DataFrame,
    tests: pd.DataFrame,
    failed: pd.DataFrame | None,
    out_dir: str | Path,
    *,
    plots: Sequence[str | Path] = (),
    title: str = "Sweep comparison",
    interactions: pd.DataFrame | None = None,
    pairs: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison_tests.csv``.

    Args:
        summary: output of :func:`experiments.analysis.summarize.summarize`
            (saved as ``comparison.csv``).
        tests: output of :func:`experiments.analysis.factors.factor_tests`
            or of :func:`experiments.analysis.stats.pairwise_tests` (saved as
            ``comparison_tests.csv``).
        failed: the runs that did not finish (rows of
            :func:`experiments.analysis.runs.load_runs`), or ``None``; listed
            with the command to rerun each.
        out_dir: folder to write into (created).
        plots: image paths to link from the markdown.
        title: the markdown heading.
        interactions: output of :func:`experiments.analysis.factors.interaction_tests`
            (saved as ``comparison_interactions.csv`` when not empty).
        pairs: all-pairs tests (``sweep.all_pairs``), saved as ``comparison_pairs.csv``.

    Returns:
        ``{"markdown": ..., "csv": ..., "tests_csv": ...}`` (and
        ``interactions_csv`` / ``pairs_csv`` when written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "comparison.md",
        "csv": out / "comparison.csv",
        "tests_csv": out / "comparison_tests.csv",
    }
    summary.to_csv(paths["csv"], index=False)
    tests.to_csv(paths["tests_csv"], index=False)
    for name, frame in (("interactions", interactions), ("pairs", pairs)):
        if frame is not None and len(frame):
            paths[f"{name}_csv"] = out / f"comparison_{name}.csv"
            frame.to_csv(paths[f"{name}_csv"], index=False)

    sections = factor_sections(tests, interactions) if "factor" in tests.columns else _tests_section(tests)
    if pairs is not None:
        sections += _tests_section(pairs, "## All pairs of groups")
    md = [f"# {title}", "", *_summary_section(summary), *sections, *_failed_section(failed)]
    if plots:
        md += ["## Learning curves", "", "Line = mean over seeds; band = 95% CI of the mean (t).", ""]
        md += [f"![{Path(p).stem}]({_relative(Path(p), out)})" for p in plots]
        md.append("")
    paths["markdown"].write_text("\n".join(md), encoding="utf-8")
    return paths
