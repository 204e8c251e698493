"""Closes handed to the writer thread while a batch is open (experiments/job/background_close.py).

A real fused sweep whose first group is closed while the second trains is in
tests/test_fuse_sweep.py; here the module's promises: outside a batch a close
runs at once; inside, the caller goes on and the batch's end waits for every
close; a failed close names its run, without hiding an error of the batch.
"""

from __future__ import annotations

import threading

import pytest

from experiments.job import background_close


def test_outside_a_batch_a_close_runs_at_once_in_the_callers_thread():
    seen = []
    assert not background_close.deferring()
    background_close.close_later("run a", lambda: seen.append(threading.current_thread()))
    assert seen == [threading.current_thread()]


def test_inside_a_batch_the_caller_goes_on_and_the_batch_ends_after_every_close():
    release, seen = threading.Event(), []

    def slow_close():
        release.wait(timeout=30)  # held until the caller has gone on
        seen.append(threading.current_thread().name)

    with background_close.overlap():
        assert background_close.deferring()
        background_close.close_later("run a", slow_close)
        background_close.close_later("run b", lambda: seen.append("b"))
        assert seen == []  # both still pending: the job returned without waiting
        release.set()
    assert seen[0].startswith("layerlab-close") and seen[1] == "b"  # in order, in the writer thread
    assert not background_close.deferring()


def test_a_failed_close_names_its_run_when_the_batch_ends():
    def broken():
        raise OSError("disk full")

    with pytest.raises(background_close.ClosesFailed) as info:
        with background_close.overlap():
            background_close.close_later("run 3f2a (seed 2)", broken)
            background_close.close_later("run 77b1 (seed 3)", lambda: None)
    text = str(info.value)
    assert "1 run(s)" in text and "run 3f2a (seed 2): OSError: disk full" in text and "77b1" not in text
    with background_close.overlap():  # nothing left over for the next batch
        pass


def test_an_error_of_the_batch_itself_goes_on_and_the_failed_close_is_printed(capsys):
    def broken():
        raise ValueError("bad plot")

    with pytest.raises(KeyboardInterrupt):
        with background_close.overlap():
            background_close.close_later("run 9c (seed 0)", broken)
            raise KeyboardInterrupt
    assert "run 9c (seed 0): ValueError: bad plot" in capsys.readouterr().out


def test_a_nested_batch_leaves_the_outer_one_in_charge():
    release, seen = threading.Event(), []
    with background_close.overlap():
        with background_close.overlap():
            background_close.close_later("run a", lambda: (release.wait(timeout=30), seen.append("a")))
        assert background_close.deferring() and seen == []  # the inner end did not wait or stop deferring
        release.set()
    assert seen == ["a"]


def test_waiting_inside_a_batch_keeps_a_failure_for_the_batchs_end():
    def broken():
        raise RuntimeError("store gone")

    with pytest.raises(background_close.ClosesFailed, match="run d4 \\(seed 1\\): RuntimeError: store gone"):
        with background_close.overlap():
            background_close.close_later("run d4 (seed 1)", broken)
            background_close.wait_for_closes()  # as a fused job whose fit failed does before closing its runs
