"""The benchmark scripts of bench/ keep working: each runs once with --quick into a temporary file.

The five scripts run concurrently (they are independent, each with its own
temporary stores and output file), so the whole module takes about as long as
the slowest one; their timings are meaningless here, only their output is
checked. The section writer and the profile parsers are tested directly.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from bench.common import SCRIPTS, SECTIONS, markers, write_section  # noqa: E402

# A liveness bound for all the quick runs together on a loaded 2-core machine, not a speed check.
TIMEOUT_S = 2400
# slow: real CLI processes (`pytest -m "not slow"` skips them); the first test also waits for the fixture's
# quick runs, so its pytest-timeout (900 s in pyproject.toml) is raised above the fixture's own bound.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + 300)]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Every script with --quick (plus run_all on one script), as many at a time as there are cores: all at once,
    a dozen TensorFlow processes on two cores, only measured how loaded the machine was (a quick run timed out)."""
    tmp = tmp_path_factory.mktemp("bench")
    jobs = {
        name: [sys.executable, "-m", f"bench.{name}", "--quick", "--out", str(tmp / f"{name}.md")] for name in SCRIPTS
    }
    jobs["run_all"] = [
        sys.executable,
        "-m",
        "bench.run_all",
        "--quick",
        "--only",
        "scaling",
        "--out",
        str(tmp / "run_all.md"),
    ]
    logs = {name: open(tmp / f"{name}.log", "w+") for name in jobs}  # files, not pipes: nothing can block
    waiting, running, results = list(jobs), {}, {}
    deadline = time.monotonic() + TIMEOUT_S
    while waiting or running:
        while waiting and len(running) < max(2, os.cpu_count() or 2):
            name = waiting.pop(0)
            running[name] = subprocess.Popen(
                jobs[name], cwd=ROOT, env=common.clean_env(), stdout=logs[name], stderr=subprocess.STDOUT, text=True
            )
        for name, proc in list(running.items()):
            if proc.poll() is None and time.monotonic() < deadline:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            logs[name].seek(0)
            results[name] = (proc.returncode, logs[name].read(), tmp / f"{name}.md")
            logs[name].close()
            del running[name]
        time.sleep(0.5)
    return results


def _section(text: str, name: str) -> str:
    start, end = markers(name)
    assert start in text and end in text, f"no {name} section"
    return text[text.index(start) : text.index(end)]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_quick_and_writes_its_section(quick_runs, name):
    rc, out, md = quick_runs[name]
    assert rc == 0, out[-4000:]
    text = md.read_text()
    section = _section(text, name)
    assert f"python -m bench.{name} --quick" in section
    assert "- Machine:" in section and "cores" in section and "GiB" in section
    assert "- Software: tensorflow" in section
    assert "- Date:" in section
    assert "|---" in section  # a markdown table
    assert not re.search(r"\bnan\b", section), "a figure came out as nan"
    # only its own section
    assert all(markers(other)[0] not in text for other in SECTIONS if other != name)
    # the table is printed too
    assert "|---" in out
    # the raw results it saved give the rows of run_all's summary
    saved = json.loads(common.raw_path(md, name).read_text())
    rows = importlib.import_module(f"bench.{name}").summary(saved["data"])
    assert rows and all(len(r) == 4 and all(isinstance(c, str) for c in r) for r in rows)


def test_overhead_reports_targets(quick_runs):
    _, _, md = quick_runs["overhead"]
    section = _section(md.read_text(), "overhead")
    for variant in ("A plain Keras", "B + mlflow.keras.autolog()", "C python runner.py"):
        assert variant in section
    assert section.count("| C ") >= 3 or section.count("C whole process") == 2
    assert "C epoch_time_s" in section


def test_render_only_rewrites_the_section_from_the_raw_results(quick_runs):
    rc, _, md = quick_runs["scaling"]
    assert rc == 0
    raw = common.raw_path(md, "scaling")
    assert raw.exists()
    before = _section(md.read_text(), "scaling")
    md.write_text(md.read_text().replace("GFLOP/s", "(edited)"))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scaling", "--render-only", "--out", str(md)],
        cwd=ROOT,
        env=common.clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _section(md.read_text(), "scaling") == before


def test_run_all_runs_the_chosen_scripts(quick_runs):
    rc, out, md = quick_runs["run_all"]
    assert rc == 0, out[-4000:]
    assert "bench.scaling: ok" in out
    text = md.read_text()
    _section(text, "scaling")
    summary = _section(text, "summary")
    assert "bench.scaling" in summary and "|---" in summary
    assert text.index(markers("summary")[0]) < text.index(markers("scaling")[0])


def test_the_summary_keeps_the_rows_of_scripts_measured_elsewhere(tmp_path):
    """Raw results are not in git: a summary rebuilt on another machine keeps the rows it cannot recompute."""
    from bench.run_all import write_summary

    out = tmp_path / "B.md"
    row = "| 3. scaling | MLP epoch time grows at most linearly | 5.44 -> 3.43 us/sample | **met** |"
    write_section(
        out,
        "summary",
        "Summary",
        "\n".join(
            [
                "| question | target | measured | result |",
                "|---|---|---|---|",
                row,
                "",
                "- `bench.scaling`: 2026-11-28 02:02 UTC; load before: 1.1",
            ]
        ),
    )
    (tmp_path / "B.lecture_protocol.json").write_text(
        json.dumps(
            {
                "header": "- Date: 2026-12-03 12:46 UTC, took 1 s\n- Load average (1/5/15 min) before: 1 / 1 / 1",
                "data": {
                    "runs": [
                        {"model": "lambda_mlp", "activation": "abs", "status": "FINISHED", "last_val": v}
                        for v in (0.977, 0.978, 0.979)
                    ]
                },
            }
        )
    )
    body = write_summary(str(out))
    assert "3. scaling" in body and "5.44 -> 3.43 us/sample" in body and "- `bench.scaling`: 2026-11-28" in body
    assert "6b. lecture section 4" in body and "0.9780 (95% CI" in body  # recomputed from its raw results
    assert body.count("3. scaling") == 1


def test_write_section_inserts_in_order_and_replaces(tmp_path):
    out = tmp_path / "B.md"
    write_section(out, "scaling", "Scaling", "first")
    write_section(out, "overhead", "Overhead", "one")
    write_section(out, "tracking_cost", "Tracking", "t")
    write_section(out, "scaling", "Scaling", "second")
    text = out.read_text()
    assert text.startswith("# Benchmarks")
    assert "first" not in text and "second" in text
    positions = [text.index(markers(n)[0]) for n in ("overhead", "scaling", "tracking_cost")]
    assert positions == sorted(positions)
    assert text.count(markers("scaling")[0]) == 1
    # hand-written text outside the sections survives a rewrite
    out.write_text(text + "\nNotes kept.\n")
    write_section(out, "overhead", "Overhead", "two")
    assert "Notes kept." in out.read_text() and "two" in out.read_text()


def test_profile_parsers(tmp_path):
    from bench.overhead import parse_importtime, profile_rows

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import json, email.message"],
        capture_output=True,
        text=True,
        check=True,
    )
    found, total, top = parse_importtime(proc.stderr)
    assert total > 0 and any(name == "json" for name, _ in top)
    prof = tmp_path / "p.prof"
    script = tmp_path / "s.py"
    script.write_text("import json\nprint(json.dumps(sum(range(1000))))\n")
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), str(script)], check=True, capture_output=True)
    rows = profile_rows(prof)
    assert rows[0][1] > 0 and all(isinstance(v, (int, float)) for _, v in rows)


def test_study_profile_puts_the_main_thread_and_the_closes_writer_in_phases():
    """py-spy's raw lines (stack;stack;... count) as it writes them for the fused study's one process."""
    from bench.study_profile import WAIT_CLOSES, WRITER_IDLE, parse_raw

    main = "<module> (runner.py:23);guarded (experiments/cli.py:168)"
    writer = (
        "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:83)"
    )
    raw = "\n".join(
        [
            f"{main};TensorFlowTrainer.fit (keras/src/backend/tensorflow/trainer.py:314) 100",
            f"{main};launch_batch (experiments/launching/batch.py:41);wait_for_closes "
            "(experiments/job/background_close.py:70) 25",
            f"{main};_find_and_load (<frozen importlib._bootstrap>:1176) 50",
            f"{writer} 40",  # waiting for work
            f"{writer};_WorkItem.run (concurrent/futures/thread.py:58);plot_history "
            "(experiments/analysis/run_plots.py:41) 10",
            "Thread._bootstrap (threading.py:1002);Heartbeat._loop (experiments/tracking/heartbeat.py:90) 500",
        ]
    )
    phases = parse_raw(raw, rate=50)
    assert phases["main"] == {
        "job: fit (training + validation epochs)": 2.0,
        WAIT_CLOSES: 0.5,
        "imports (TensorFlow, Keras, MLflow, pandas, SciPy, ...)": 1.0,
    }
    assert phases["writer"] == {WRITER_IDLE: 0.8, "job: plots (4 PNG)": 0.2}  # the heartbeat thread: left out


def test_statistics_helpers():
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.spread([1.0, 2.0, 4.0], 1) == "2.0 (1.0-4.0, n=3)"
    assert common.spread([], 1) == "n/a"
    assert "| a |" in common.table(["a"], [[1]])


def test_server_load_without_postgresql_fails_with_one_clear_paragraph(tmp_path):
    env = {**common.clean_env(), "LAYERLAB_PG_BIN": str(tmp_path / "no-postgres")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.server_load", "--quick", "--out", str(tmp_path / "B.md")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    message = proc.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "cannot start the PostgreSQL + MLflow stack" in message and "apt-get install postgresql" in message
    assert "Nothing was measured." in message and not (tmp_path / "B.md").exists()


def test_sweep_vs_shell_reports_four_ways_and_the_targets(quick_runs):
    _, _, md = quick_runs["sweep_vs_shell"]
    section = _section(md.read_text(), "sweep_vs_shell")
    for way in ("| shell ", "| basic ", "| joblib ", "| layerlab "):
        assert way in section
    assert "joblib / basic <= 0.6" in section and "joblib / shell loop <= 0.7" in section
    assert "layerlab / joblib <= 1.05" in section
    assert "single run: runner.py <= 1.05x the plain script" in section
    assert "xargs -P 2" in section and "load (1 min) before each" in section


def test_sweep_profile_puts_the_parent_and_each_worker_in_phases(quick_runs):
    _, _, md = quick_runs["sweep_profile"]
    section = _section(md.read_text(), "sweep_profile")
    # At least one worker: which of the two loky workers runs the 2 quick jobs depends on the machine's load; and
    # on a loaded machine py-spy may sample none of them (measured once under two pytest workers), which it says.
    from bench.sweep_profile import NO_WORKER

    assert "| parent s | worker 1 s |" in section or (NO_WORKER in section and "| parent s |" in section)
    assert "imports (TensorFlow" in section and "waiting: parent for its workers" in section
    assert "first job started" in section and "process exited" in section


def test_sweep_profile_parser_keeps_main_threads_of_the_parent_and_the_workers():
    from bench.sweep_profile import OTHER, parse_raw

    parent = 'process 10:""'
    worker = (
        parent + ';process 11:"python -m joblib.externals.loky.backend.popen_loky_posix --process-name LokyProcess-1"'
    )
    tracker = parent + ';process 12:"python -c from joblib.externals.loky.backend.resource_tracker import main"'
    raw = "\n".join(
        [
            f"{parent};<module> (runner.py:23);Parallel._retrieve (joblib/parallel.py:1) 100",
            f"{parent};<module> (runner.py:23);start_sweep (experiments/sweeps/callback.py:90) 20",
            f"{parent};Thread._bootstrap (threading.py:1002);Queue._feed (q.py:1) 500",  # not the main thread
            f"{worker};_run_module_as_main (<frozen runpy>:198);_process_worker (loky/process_executor.py:1);"
            "Queue.get (multiprocessing/queues.py:122) 30",
            f"{worker};_run_module_as_main (<frozen runpy>:198);run_job (experiments/job/entry.py:1);"
            "_find_and_load (<frozen importlib._bootstrap>:1176) 50",
            f"{worker};_run_module_as_main (<frozen runpy>:198);fit_and_score (experiments/training/loop.py:1);"
            "TensorFlowTrainer.fit (keras/src/backend/tensorflow/trainer.py:1) 40",
            f"{worker};_run_module_as_main (<frozen runpy>:198);mystery (x.py:1) 5",
            f"{tracker};main (x.py:1) 99",
        ]
    )
    got = parse_raw(raw, rate=10)
    assert set(got) == {"parent", "worker 1"}
    assert got["parent"] == {"waiting: parent for its workers": 10.0, "sweep start: store, experiment, parent run": 2.0}
    w = got["worker 1"]
    assert w["waiting: worker for its next job"] == 3.0
    assert w["imports (TensorFlow, Keras, MLflow, pandas, SciPy, ...)"] == 5.0  # an import inside a job is an import
    assert w["job: fit (training + validation epochs)"] == 4.0 and w[OTHER] == 0.5
