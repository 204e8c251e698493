"""Numbers as the reports and verdicts print them (fixed decimals, p-values, ``n/a``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def fmt(x: float | None, digits: int = 4) -> str:
    """Format a float with fixed decimals, NaN or None as ``n/a``.

    Args:
        x: the number.
        digits: decimals.
    """
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """Format a p-value with 2 significant digits (``n/a`` when missing).

    Args:
        p: the p-value.
    """
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def md_cell(x: Any) -> str:
    """Make a value safe for a markdown table cell.

    Args:
        x: any value.
    """
    return str(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (no tabulate dependency).

    Args:
        header: column titles.
        rows: cell values.
    """
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
