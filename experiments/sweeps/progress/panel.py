"""The live panel of a sweep on a terminal (``rich``): the counts, a bar, the ETA and the running jobs."""

from __future__ import annotations

import time

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from experiments.sweeps.progress import view
from experiments.sweeps.progress.view import Board


def panel(board: Board):
    """What the terminal shows while the sweep runs (:class:`~experiments.sweeps.progress.display.SweepProgress`)."""
    finished = len(board.done) + len(board.failed)
    head = Table.grid(padding=(0, 1))
    head.add_row(
        Text("sweep", style="bold"),
        ProgressBar(total=board.total or max(len(board.jobs), 1), completed=finished, width=30),
        Text(f"{finished}/{board.total if board.total is not None else '?'}"),
        Text(view.counts(board)),
        Text(f"elapsed {view.duration(board.elapsed_s)}", style="dim"),
    )
    running = board.running
    if not running:
        return head
    table = Table(box=None, padding=(0, 2), show_edge=False, header_style="dim")
    for column in ("job", "running", "epochs done", "validation", "for"):
        table.add_column(column)
    for job in running:
        took = time.time() - job["started"] if "started" in job else None
        table.add_row(
            str(job["job"]),
            board.names.get(int(job["job"]), ""),
            view.epoch_text(job),
            view.value_text(job) or "-",
            view.duration(took),
        )
    return Group(head, table)
