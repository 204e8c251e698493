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


def terminal_width(stream=None) -> int | None:
    """The columns of the terminal ``stream`` (stdout by default) writes to; None when it is not a terminal."""
    import shutil
    import sys

    stream = stream if stream is not None else sys.stdout
    try:
        return shutil.get_terminal_size().columns if stream.isatty() else None
    except (AttributeError, ValueError):
        return None


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """A fixed-width text table, two spaces between columns, a dashed rule under the header.

    Args:
        header: column titles.
        rows: cell texts.
        width: the most columns a line may take (a terminal's); wider tables wrap the text of their widest
            columns at spaces, never inside a word. None: every cell on one line.
    """
    import textwrap

    table = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    if width is not None:
        floor = [max(len(word) for row in table for word in (row[i].split() or [""])) for i in range(len(header))]
        while sum(widths) + 2 * (len(widths) - 1) > width:
            shrinkable = [i for i in range(len(widths)) if widths[i] > floor[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1

    def lines_of(row: list[str]) -> list[str]:
        cells = [
            textwrap.wrap(c, w, break_long_words=False, break_on_hyphens=False) or [""] for c, w in zip(row, widths)
        ]
        height = max(len(c) for c in cells)
        return [
            "  ".join((c[k] if k < len(c) else "").ljust(w) for c, w in zip(cells, widths)).rstrip()
            for k in range(height)
        ]

    out = lines_of(table[0]) + ["  ".join("-" * w for w in widths)]
    for row in table[1:]:
        out += lines_of(row)
    return "\n".join(out)
