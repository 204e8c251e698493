"""Where the fused study's seconds go: a sampling profile of the issue's own command (issue 37).

    python -m bench.study_profile [--quick] [--epochs 20] [--rate 50] [--out FILE]

The command of ``bench.study_speed``'s "sweep fused" way (``python runner.py
-m dataset=mnist model=lambda_mlp model.activation=abs,relu
seed=0,1,2,3,4 training.epochs=20 sweep.fuse_replicates=true``: Hydra's
basic launcher, every job in one process, two fused groups of 5 seeds) runs
twice: once plain, for its wall time and its timeline from the MLflow store
(each group's runs created and closed), and once under ``py-spy record --idle``.
Each sample of the main thread goes to the first phase of :data:`PHASES` whose
rule matches its stack (``bench.sweep_profile``'s rules, after this file's
own), so the phases add up to the main thread's wall time; the writer thread
that closes a group's runs while the next group trains
(``experiments/job/background_close.py``) has its own column. What is not the
fit is what the sweep costs beyond the steps (BENCHMARKS.md, "Step profile",
has the steps against their matrix products).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.common import (
    PYTHON,
    QUICK_NOTE,
    ROOT,
    ChildFailed,
    Header,
    finish,
    parser,
    run_script,
    run_timed,
    say,
    table,
)
from bench.study_speed import FUSED, sweep_cmd
from bench.sweep_profile import PHASES as SWEEP_PHASES
from bench.sweep_profile import py_spy, record
from bench.sweep_vs_shell import finished_jobs, make_store

NAME = "study_profile"
TITLE = "Where the fused study's seconds go: a profile of the issue's command (issue 37)"
WAIT_CLOSES = "waiting: the batch's end for the last group's closes"
# (phase, substrings of a frame), this file's first: the first phase with a frame containing one of them wins.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    (WAIT_CLOSES, ("wait_for_closes (experiments/job/background_close.py",)),
    *SWEEP_PHASES[:1],  # imports
    ("job: fused engine: replicas seeded, built, compiled", ("FusedReplicas.__init__",)),
    ("job: describe the model (summary, picture, inputs)", ("RunRecord.describe",)),
    *SWEEP_PHASES[1:],
]
WRITER_IDLE = "writer thread idle"


def classify(frames: list[str]) -> str:
    """The phase of one stack (root first)."""
    for phase, needles in PHASES:
        if any(needle in frame for frame in frames for needle in needles):
            return phase
    return "other"


def parse_raw(text: str, rate: float) -> dict[str, dict[str, float]]:
    """Seconds per phase of the main thread and of the closes' writer thread, from py-spy's raw output."""
    out: dict[str, dict[str, float]] = {"main": defaultdict(float), "writer": defaultdict(float)}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        seconds = int(count) / rate
        if frames and frames[0].startswith("Thread._bootstrap"):
            if any("concurrent/futures/thread.py" in f for f in frames):  # the one writer thread of the closes
                idle = frames[-1].startswith("_worker (concurrent/futures/thread.py")  # waiting for work
                out["writer"][WRITER_IDLE if idle else classify(frames)] += seconds
            continue  # heartbeats, metric sinks, the progress display: waiting threads
        out["main"][classify(frames or ["<no Python frame>"])] += seconds
    return {k: dict(v) for k, v in out.items()}


def timeline(db: Path, spawn: float, exited: float) -> list[tuple[str, float]]:
    """Seconds from spawn: the parent run; each fused group's runs created and closed; the parent closed; exit."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT r.start_time / 1000.0, r.end_time / 1000.0, t.value, g.value FROM runs r "
            "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'layerlab.role' "
            "LEFT JOIN tags g ON g.run_uuid = r.run_uuid AND g.key = 'layerlab.fused_group'"
        ).fetchall()
    parent = next(r for r in rows if r[2] == "parent")
    groups: dict[str, list] = defaultdict(list)
    for start, end, role, group in rows:
        if role == "job":
            groups[group or "solo"].append((start, end))
    out = [("parent run created", parent[0] - spawn)]
    for name, runs in sorted(groups.items(), key=lambda g: min(s for s, _ in g[1])):
        out.append((f"{name}: runs created", min(s for s, _ in runs) - spawn))
        out.append((f"{name}: runs closed (last)", max(e for _, e in runs) - spawn))
    out += [("parent run closed", parent[1] - spawn), ("process exited", exited - spawn)]
    return sorted(out, key=lambda event: event[1])  # a group's runs close while the next group's are created


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20, --quick 1)")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second (default 50)")
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    epochs = args.epochs or (1 if args.quick else 20)
    limit = 1200 if args.quick else None
    py_spy()  # says how to install it before anything runs
    if not args.quick:
        run_timed([PYTHON, "-m", "experiments.data.fetch", "mnist"], cwd=ROOT, timeout=1800)
    header = Header(NAME, argv, args.quick, with_tf=False)
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-study-profile-") as tmp_name:
        tmp = Path(tmp_name)
        template = make_store(tmp / "template.db")
        plain, prof = tmp / "plain", tmp / "profiled"
        for work in (plain, prof):
            work.mkdir()
            shutil.copyfile(template, work / "mlflow.db")
        spawn = time.time()
        wall, proc = run_timed(sweep_cmd(plain, epochs, FUSED, limit), cwd=ROOT, timeout=3600)
        line = timeline(plain / "mlflow.db", spawn, spawn + wall)
        if finished_jobs(plain / "mlflow.db") != 10:
            raise ChildFailed(f"the plain run finished {finished_jobs(plain / 'mlflow.db')} of 10 runs")
        say(f"plain: {wall:.1f} s; " + "; ".join(f"{k} at {v:.2f} s" for k, v in line))
        raw = prof / "py-spy.txt"
        prof_wall = record(sweep_cmd(prof, epochs, FUSED, limit), raw, args.rate)
        phases = parse_raw(raw.read_text(), args.rate)
    data = {
        "epochs": epochs,
        "rate": args.rate,
        "wall": wall,
        "cpu": proc.cpu_s,
        "timeline": line,
        "profiled_wall": prof_wall,
        "phases": phases,
        "quick": args.quick,
    }
    return finish(args, NAME, TITLE, header, data, render)


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    main_t, writer = d["phases"]["main"], d["phases"]["writer"]
    names = [WAIT_CLOSES, *(p for p, _ in PHASES if p != WAIT_CLOSES), "other", WRITER_IDLE]
    rows = [
        [name, f"{main_t.get(name, 0.0):.2f}", f"{writer.get(name, 0.0):.2f}"]
        for name in names
        if main_t.get(name, 0.0) >= 0.005 or writer.get(name, 0.0) >= 0.005
    ]
    rows.append(["**all (wall time of each thread)**", f"{sum(main_t.values()):.2f}", f"{sum(writer.values()):.2f}"])
    fit = main_t.get("job: fit (training + validation epochs)", 0.0)
    tl_rows, prev = [], 0.0
    for label, at in d["timeline"]:
        tl_rows.append([label, f"{at:.2f}", f"{at - prev:.2f}"])
        prev = at
    md = [
        f"`python runner.py -m dataset=mnist model=lambda_mlp model.activation=abs,relu seed=0,1,2,3,4 "
        f"training.epochs={d['epochs']} sweep.fuse_replicates=true`"
        + (" (1,200 digits: --quick)" if d["quick"] else "")
        + ": Hydra's basic launcher, two fused groups of 5 seeds in one process, into a copy of an empty, "
        "migrated SQLite store.",
        "",
        f"Timeline of the plain run ({d['wall']:.1f} s, CPU {d['cpu']:.0f} s), from the store's run times:",
        "",
        table(["from spawn to", "at s", "stretch s"], tl_rows),
        "",
        f"Profile (`py-spy record --idle --rate {d['rate']}`; the profiled run took {d['profiled_wall']:.1f} s, "
        f"{d['profiled_wall'] / d['wall']:.2f}x the plain one). Seconds per phase of the main thread and of the "
        "writer thread that closes a group's runs while the next group trains; a sample goes to the first phase "
        "whose rule matches its stack (`bench/study_profile.py: PHASES`):",
        "",
        table(["phase", "main thread s", "writer thread s"], rows),
        "",
        f"The fit (tracing, epochs, validation) is {fit:.1f} s of the main thread's "
        f"{sum(main_t.values()):.1f} s ({fit / max(sum(main_t.values()), 1e-9):.0%}).",
    ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    run_script(main, NAME)
