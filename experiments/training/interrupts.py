"""Ctrl-C and SIGTERM during training: stop at the next batch, cleanly.

A preempted node, ``kill`` or Ctrl-C ends a job KILLED with its completed
epochs logged and checkpointed; :class:`StopRequest` is what the training
callbacks poll.
"""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (a preempted node, ``kill``), raised at a batch boundary."""


class StopRequest:
    """The first SIGINT/SIGTERM only *requests* a stop; training raises at the next batch.

    Raising from the signal handler itself could land between the end-of-epoch
    checkpoint and the metric log of that epoch; stopping at a batch boundary
    keeps them consistent, so a resumed run neither repeats nor skips a step.
    A second signal stops at once.
    """

    signum: int | None = None

    @classmethod
    def check(cls) -> None:
        if cls.signum is not None:
            raise Interrupted(f"signal {cls.signum}")


@contextmanager
def graceful_interrupts():
    """Route SIGINT/SIGTERM to :class:`StopRequest` for the duration of a job."""

    def handler(signum, frame):
        if StopRequest.signum is not None:
            raise Interrupted(f"signal {signum} (second)")
        StopRequest.signum = signum
        print(
            f"layerlab: signal {signum} received: stopping at the next batch (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    StopRequest.signum = None
    try:
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread (some launchers): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if StopRequest.signum is not None:  # arrived after training: still an interruption
            StopRequest.check()
