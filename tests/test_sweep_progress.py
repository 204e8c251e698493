"""A sweep you can watch: the jobs' status files, the plain lines off a terminal, the live display on one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.config.multirun import count_jobs
from experiments.sweeps.progress import view
from experiments.sweeps.progress.display import SweepProgress, live_wanted
from experiments.training.progress_file import read_status, read_statuses, status_path, write_status
from experiments.training.runtime import fit_verbosity
from tests.conftest import ROOT, run_cli

SWEEP = [
    "dataset=digits",
    "model.input.shape=null",
    "training.epochs=1",
    "training.batch_size=128",
    "tracking.log_model=false",
    "tracking.log_plots=false",
    "training.checkpoint.enabled=false",
    "sweep.compare=false",
]
CONTROL = re.compile(r"[\x1b\r]")
LIBRARY_LINES = re.compile(
    r"Creating initial MLflow database tables|alembic|Context impl SQLiteImpl|"
    r"Launching \d+ jobs|\t#\d+ : "
)


def _job(folder: Path, num: int, **fields) -> Path:
    path = status_path(folder, num)
    write_status(
        path,
        fresh=True,
        job=num,
        overrides=[f"model.activation={['abs', 'relu'][num % 2]}", f"seed={num // 2}"],
        status="running",
        **fields,
    )
    return path


def test_status_file_is_replaced_whole_and_merged(tmp_path):
    path = _job(tmp_path, 3)
    write_status(path, epochs=5, metric="val_accuracy")
    write_status(path, epoch=2, value=0.75)
    status = read_status(path)
    assert status["job"] == 3 and status["epoch"] == 2 and status["epochs"] == 5 and status["value"] == 0.75
    assert status["pid"] == os.getpid() and status["started"] <= status["updated"]
    assert [p.name for p in path.parent.iterdir()] == ["3.json"]  # no temporary file left behind
    write_status(path, fresh=True, job=3, status="running")  # a new sweep in the same folder starts over
    assert "epoch" not in read_status(path)


def test_reader_skips_files_that_are_not_status_files(tmp_path):
    _job(tmp_path, 10)
    _job(tmp_path, 2)
    (status_path(tmp_path, 0).parent / "7.json").write_text("{half a fi")
    assert [s["job"] for s in read_statuses(tmp_path)] == [2, 10]
    assert read_statuses(tmp_path / "nowhere") == []


def test_a_job_whose_process_is_gone_is_lost(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = _job(tmp_path, 0)
    write_status(path, pid=int(proc.stdout))
    assert view.state(read_status(path)) == view.LOST
    assert view.state(read_status(_job(tmp_path, 1))) == "running"  # this process: alive


def test_plain_renderer_prints_one_line_per_finished_job_with_counts_and_eta(tmp_path):
    out_file = tmp_path / "out.txt"
    with out_file.open("w") as out:
        display = SweepProgress(tmp_path, ["model.activation=abs,relu", "seed=0,1"], planned=4, stream=out)
        assert display.live_mode is False  # a file is not a terminal
        display.start()
        first = _job(tmp_path, 0, epochs=2, metric="val_accuracy")
        _job(tmp_path, 1, epochs=2, epoch=1, value=0.5)
        write_status(first, epoch=2, value=0.91234, status="FINISHED")
        board = display.poll()
        display.poll()  # a second look prints nothing new
        write_status(_job(tmp_path, 2), status="FAILED", error="dataset.limit: too small\nmore")
        display.stop()
    lines = out_file.read_text().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("layerlab: job 0 FINISHED activation=abs seed=0 val_accuracy=0.9123 in ")
    assert "1 done, 1 running, 0 failed, 2 left, ETA " in lines[0] and "ETA ?" not in lines[0]
    assert lines[1].startswith("layerlab: job 2 FAILED activation=abs seed=1")
    assert ": dataset.limit: too small |" in lines[1]
    assert "1 done, 1 running, 1 failed, 1 left" in lines[1]
    assert not CONTROL.search(out_file.read_text())
    assert (board.names[0], board.names[1]) == ("activation=abs seed=0", "activation=relu seed=0")


def test_eta_counts_the_share_of_running_jobs_and_is_unknown_before_a_job_ends():
    running = {"job": 1, "status": "running", "epochs": 4, "epoch": 2}
    assert view.Board([running], planned=3, elapsed_s=30).eta_s() is None
    board = view.Board([{"job": 0, "status": "FINISHED"}, running], planned=3, elapsed_s=30)
    assert board.eta_s() == pytest.approx(30 * (3 - 1.5) / 1.5)
    assert view.Board([{"job": 0, "status": "FINISHED"}], planned=None, elapsed_s=30).eta_s() is None
    pruned = view.Board([{"job": 0, "status": "FINISHED", "pruned": True}], planned=2, elapsed_s=1)
    assert view.counts(pruned).startswith("1 done (1 pruned), 0 running, 0 failed, 1 left")


def test_sweep_size_from_overrides_and_sweeper_params():
    assert count_jobs(["model.activation=abs,relu", "seed=range(0,3)", "training.epochs=1"], {}) == 6
    assert count_jobs(["seed=0,1"], {"model.activation": "abs,relu,tanh", "seed": "0,1,2,3"}) == 6
    assert count_jobs(["training.epochs=1"], {}) == 1


def test_keras_prints_no_epoch_lines_in_a_sweep_unless_asked():
    assert fit_verbosity("auto", in_sweep=True) == 0
    assert fit_verbosity(2, in_sweep=True) == 2 and fit_verbosity(1, in_sweep=True) == 1  # training.verbose=2 / 1
    assert fit_verbosity("auto", in_sweep=False) in (1, 2)  # a single run: its bar (or a line per epoch in a log)


def test_no_live_display_off_a_terminal(tmp_path, monkeypatch):
    with (tmp_path / "log").open("w") as f:
        assert live_wanted(f) is False
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        monkeypatch.setenv("TERM", "xterm")
        assert live_wanted(tty) is True
        monkeypatch.setenv("LAYERLAB_PROGRESS", "plain")
        assert live_wanted(tty) is False
    os.close(leader)


@pytest.mark.slow
@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "LAYERLAB_DEBUG=1"])
def test_a_piped_sweep_prints_plain_lines_one_per_job(debug, tmp_path, store):
    proc = run_cli(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "model.activation=abs,relu",
        "seed=0,1",
        *SWEEP,
        f"tracking.uri={store}",
        tmp_path=tmp_path,
        env={"LAYERLAB_DEBUG": "1" if debug else "0"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    results = [line for line in proc.stdout.splitlines() if line.startswith("layerlab: job ")]
    assert len(results) == 4, proc.stdout
    assert {r.split()[4] for r in results} == {"activation=abs", "activation=relu"}
    assert all(" FINISHED " in r and "val_sparse_categorical_accuracy=" in r for r in results), results
    assert "4 done, 0 running, 0 failed, 0 left" in results[-1]
    assert not re.search(r"Epoch \d+/\d+|\d+/\d+ - \d+m?s", out), out[-3000:]  # no Keras epoch lines
    if debug:
        assert LIBRARY_LINES.search(out), out[-3000:]
    else:
        assert not CONTROL.search(out), repr(CONTROL.search(out))
        assert not LIBRARY_LINES.search(out), LIBRARY_LINES.findall(out)


def _read_pty(leader: int, proc: subprocess.Popen, timeout: float) -> bytes:
    chunks, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.slow
def test_a_sweep_on_a_terminal_shows_the_live_display(tmp_path, store):
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color", "COLUMNS": "150", "LINES": "40"}
    env.pop("LAYERLAB_DEBUG", None)
    env.pop("LAYERLAB_PROGRESS", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "runner.py"),
            "-m",
            "model.activation=abs,relu",
            *SWEEP,
            "training.epochs=3",
            f"tracking.uri={store}",
            f"hydra.sweep.dir={tmp_path}/multirun",
        ],
        cwd=ROOT,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    try:
        text = _read_pty(leader, proc, timeout=600).decode("utf-8", "replace")
        assert proc.wait(timeout=60) == 0, text[-3000:]
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    (tmp_path / "terminal.txt").write_text(text)
    assert "\x1b[" in text  # the display draws in place
    assert "2/2" in text and "2 done, 0 running, 0 failed, 0 left" in text, text[-3000:]
    assert "ETA" in text and "sweep" in text
    assert "layerlab: job 0 FINISHED activation=abs" in text and "layerlab: job 1 FINISHED activation=relu" in text
    assert not re.search(r"Epoch \d+/\d+", text)


def test_job_lines_and_tables_fit_a_120_column_terminal_without_splitting_words():
    from experiments.analysis.formatting import text_table

    job = {
        "job": 12,
        "status": "FAILED",
        "started": 0,
        "updated": 65,
        "metric": "val_sparse_categorical_accuracy",
        "error": "ConfigError: training.batch_size: expected a positive integer, e.g. training.batch_size=1024",
    }
    board = view.Board(
        [job],
        planned=40,
        elapsed_s=65,
        names={12: "model=residual_graph model.activation=abs optimizer.learning_rate=0.003 seed=4"},
    )
    wide = view.result_line(job, board)
    assert "| 0 done, 0 running, 1 failed" in wide and len(wide) > 120  # off a terminal: one line, counts included
    fitted = view.result_line(job, board, width=120)
    assert all(len(line) <= 120 for line in fitted.splitlines())
    assert fitted.split() == wide.split("|")[0].split()  # the same words, none cut
    short = {"job": 1, "status": "FINISHED", "started": 0, "updated": 5}
    assert view.result_line(short, board, width=120) == view.result_line(short, board)
    header = ["factor", "levels", "difference [95% CI]", "verdict"]
    rows = [
        [
            "model.activation",
            "abs vs relu",
            "+0.0123 [+0.0010, +0.0236]",
            "abs is better than relu (p=0.012, Holm), a large effect (d_z=1.4); the difference is detectable",
        ]
    ]
    table = text_table(header, rows, width=60)
    assert all(len(line) <= 60 for line in table.splitlines())
    assert sorted(table.replace("-", " ").split()) == sorted(" ".join(header + rows[0]).replace("-", " ").split())
    assert text_table(header, rows).count("\n") == 2  # no width: header, rule, one line per row
