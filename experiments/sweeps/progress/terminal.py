"""While a live display owns the terminal: every line written to fd 1 or 2, also by worker processes, above it.

A launcher's workers (joblib/loky, layerlab) inherit the terminal as their
file descriptors 1 and 2 and write to it directly; a line written while the
live panel is drawn lands inside the panel and the next redraw leaves both
garbled.  :class:`TerminalCapture` points fds 1 and 2 of this process (and so
of every worker started afterwards) at a pipe, hands each line read from it
to ``on_line`` (the display prints it above the panel), and draws on a
duplicate of the real terminal.  Used on a terminal only; plain output is
never captured.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable


class TerminalCapture:
    """fds 1 and 2 into a pipe whose lines go to ``on_line``; :attr:`terminal` writes to the real terminal.

    Args:
        on_line: called from the reader thread with each line (without its newline).
    """

    def __init__(self, on_line: Callable[[str], None]):
        self.on_line = on_line
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        self.terminal = os.fdopen(os.dup(self._saved[0]), "w", buffering=1, encoding="utf-8", errors="replace")
        self._read, write = os.pipe()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        self._reader = threading.Thread(target=self._pump, name="layerlab-terminal-capture", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._read, 65536)
            except OSError:
                return
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self.on_line(line.decode("utf-8", "replace").rstrip("\r"))

    def restore(self) -> None:
        """fds 1 and 2 back to the terminal.  The pipe stays open and read: a worker that writes later
        (its shutdown) neither blocks nor breaks; what it writes is still shown."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
