"""Waiting on a real process in a test: poll until something shows up, with a liveness bound, never a speed check."""

from __future__ import annotations

import time


def wait_until(found, proc, timeout: float, what: str):
    """Poll ``found()`` until it returns something (returned), ``proc`` ends early, or ``timeout`` passes.

    ``timeout`` is a liveness bound for a loaded machine, not a speed check. When ``proc`` ends first,
    the assertion carries the tail of its output (when it was piped).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value is not None:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"the process ended early, waiting for {what}:\n{(out or '')[-3000:]}\n{(err or '')[-3000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"no {what} in {timeout:.0f} s")
