"""The sweep's one live display in the terminal, or plain lines where stdout is not a terminal.

Started by the sweep callback once the parent run is open and stopped at the
sweep's finalisation, in the sweep's own process.  Jobs may run in other
processes, so a thread polls the jobs' status files in the sweep folder
(:mod:`experiments.training.progress_file`) twice a second:

* on a terminal: a ``rich`` live panel (jobs done / running / failed / left,
  a bar, the ETA, and each running job's name, epoch and validation value),
  redrawn in place; each finished job's line is printed above it;
* elsewhere (CI, a log file, SLURM): one plain line per finished job, with
  the counts and the ETA; no colours, no cursor movement, no ``\\r``.

``LAYERLAB_PROGRESS=plain`` forces the plain lines on a terminal too.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

from experiments.process import plain_progress
from experiments.sweeps.progress import view
from experiments.sweeps.progress.terminal import TerminalCapture
from experiments.sweeps.progress.view import Board
from experiments.training.progress_file import PROGRESS_DIR, read_statuses

POLL_S = 0.5


def live_wanted(stream) -> bool:
    """A live display only on a real terminal that can move its cursor."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb" and not plain_progress()


class SweepProgress:
    """Polls a sweep's status files and shows them, live or as plain lines.

    Args:
        sweep_dir: the sweep folder (its ``.progress/`` is emptied at start: a folder reused by a new sweep).
        sweep_overrides: the sweep's own overrides (a job is named by what differs from them).
        replicate_key: the key shown last in a job's name.
        planned: the jobs the sweep will run, when known (:meth:`expect` sets it later).
        stream: where to draw (the process's stdout by default).
        live: force the live display on or off (default: :func:`live_wanted`).
    """

    def __init__(
        self,
        sweep_dir: Path,
        sweep_overrides=(),
        replicate_key: str = "seed",
        planned: int | None = None,
        stream=None,
        live: bool | None = None,
    ):
        self.sweep_dir = Path(sweep_dir)
        self.sweep_overrides = list(sweep_overrides)
        self.replicate_key = replicate_key
        self.planned = planned
        self.stream = stream if stream is not None else sys.stdout
        self.live_mode = live_wanted(self.stream) if live is None else live
        self.reported: set[int] = set()
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._live = None
        self._capture: TerminalCapture | None = None
        self._t0 = time.monotonic()

    def expect(self, jobs: int) -> None:
        """The sweep's size, once its sweeper knows it (an Optuna search: the trials it will run)."""
        self.planned = int(jobs)

    def start(self) -> SweepProgress:
        shutil.rmtree(self.sweep_dir / PROGRESS_DIR, ignore_errors=True)
        self._t0 = time.monotonic()
        if self.live_mode:
            from rich.console import Console
            from rich.live import Live

            self._capture = TerminalCapture(self._line)  # workers' writes to the terminal go above the panel
            console = Console(file=self._capture.terminal, highlight=False)
            self._live = Live(
                console=console, auto_refresh=False, transient=False, redirect_stdout=True, redirect_stderr=True
            )
            self._live.start()
        self._thread = threading.Thread(target=self._run, name="layerlab-sweep-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Last look at the files (every finished job gets its line), then the display ends where it is."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.poll()
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
            self._capture.restore()

    def board(self) -> Board:
        jobs = read_statuses(self.sweep_dir)
        unnamed = [j for j in jobs if int(j["job"]) not in self.names]
        self.names.update(view.names(unnamed, self.sweep_overrides, self.replicate_key))
        return Board(jobs=jobs, planned=self.planned, elapsed_s=time.monotonic() - self._t0, names=self.names)

    def poll(self) -> Board:
        """One look: a line for each job that ended since the last look, and the live panel redrawn."""
        with self._lock:
            board = self.board()
            ended = [j for j in board.jobs if view.state(j) != view.RUNNING and int(j["job"]) not in self.reported]
            if self._live is not None:  # first the panel, so that a line printed above redraws the new one
                from experiments.sweeps.progress.panel import panel

                self._live.update(panel(board), refresh=True)  # rich draws a printed line's panel from the last refresh
            for job in ended:
                self.reported.add(int(job["job"]))
                self._line(view.result_line(job, board, self._width()))
            return board

    def _width(self) -> int | None:
        """The terminal's columns (job lines are fitted to them); None when the lines go to a file or pipe."""
        if self._live is not None:
            return self._live.console.width
        try:
            return shutil.get_terminal_size().columns if self.stream.isatty() else None
        except (AttributeError, ValueError):
            return None

    def _line(self, text: str) -> None:
        live = self._live
        if live is not None:
            live.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception as exc:  # a display must never stop a sweep
                print(
                    f"layerlab: the sweep's progress display stopped: {type(exc).__name__}: {exc}",
                    file=sys.stderr,
                    flush=True,
                )
                return
