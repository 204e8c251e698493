"""Where a joblib sweep's seconds go: a sampling profile of the parent and every worker (GitHub issue 16).

    python -m bench.sweep_profile [--quick] [--jobs 8] [--epochs 20] [--rate 50] [--out FILE]

One sweep of N jobs of the lecture's section-4 experiment (as in
``bench.sweep_vs_shell``) with ``hydra/launcher=joblib
hydra.launcher.n_jobs=2``, run under ``py-spy record --subprocesses --idle``:
py-spy samples the Python stack of every process the sweep starts, waiting
included, without changing their code. Each sample of a process's main
thread is put in one phase by the first rule of :data:`PHASES` that matches
its stack (imports first: an import inside the job counts as an import), so
the phases of one process add up to its wall time.

The same sweep also runs once without the profiler; its timeline (spawn,
parent run, first job, last job, parent run closed, exit), read from the
MLflow store, shows the serial stretches; the profiled run's wall time says
how much the sampling slowed it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
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
    clean_env,
    finish,
    parser,
    run_script,
    run_timed,
    say,
    table,
)
from bench.sweep_vs_shell import finished_jobs, jobs_of, make_store, sweep_cmd

NAME = "sweep_profile"
TITLE = "2b. Where a joblib sweep's seconds go (profile)"

# (phase, substrings of a frame): the first phase with a frame containing one of its substrings wins.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("imports (TensorFlow, Keras, MLflow, pandas, SciPy, ...)", ("_find_and_load (<frozen importlib._bootstrap>",)),
    ("waiting: parent for its workers", ("Parallel._retrieve", "WarmUp.wait")),
    ("waiting: worker for its next job", ("Queue.get (multiprocessing/queues.py",)),
    ("sweep start: store, experiment, parent run", ("start_sweep (experiments/sweeps/callback.py",)),
    ("sweep end: comparison, reports, champion", ("finalize (experiments/sweeps/finalize.py",)),
    ("job: plots (4 PNG)", ("experiments/analysis/run_plots.py",)),
    ("job: model logging (log_model)", ("log_self_contained_model", "experiments/job/packaging.py")),
    ("job: checkpoints", ("experiments/training/checkpoint.py",)),
    ("job: fit (training + validation epochs)", ("TensorFlowTrainer.fit",)),
    ("job: test-set evaluation, predictions", ("experiments/training/evaluate.py",)),
    ("job: Keras session reset, seeds, threads", ("setup_runtime (experiments/training/runtime.py",)),
    ("job: model build", ("experiments/models/",)),
    ("job: data (load, split, tf.data)", ("experiments/data/",)),
    ("job: MLflow store reads and writes", ("mlflow/store/", "sqlalchemy/", "mlflow/tracking/")),
    ("job: other layerlab code", ("experiments/job/", "experiments/training/", "experiments/tracking/")),
    ("Hydra: compose, job set-up, launching", ("hydra/",)),
    ("interpreter start and exit", ("<no Python frame>", "_shutdown (threading.py")),
]
OTHER = "other"


def classify(frames: list[str]) -> str:
    """The phase of one main-thread stack (root first)."""
    for phase, needles in PHASES:
        if any(needle in frame for frame in frames for needle in needles):
            return phase
    return OTHER


def parse_raw(text: str, rate: float) -> dict[str, dict[str, float]]:
    """Seconds per phase of each process's main thread, from py-spy's ``--format raw`` (collapsed stacks).

    Returns ``{"parent": {...}, "worker 1": {...}, ...}``; the loky resource tracker and
    other helper processes, and every thread but the main one, are left out.
    """
    per_proc: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    command: dict[str, str] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        procs = [f for f in frames if f.startswith("process ")]
        rest = [f for f in frames if not f.startswith("process ")]
        if not procs:  # a single process (no --subprocesses)
            procs = ['process 0:""']
        pid, _, cmd = procs[-1].partition(":")
        # the process py-spy started itself has an empty command line: the sweep's parent
        command[pid] = "parent" if len(procs) == 1 else cmd
        if rest and rest[0].startswith("Thread._bootstrap"):
            continue  # not the main thread
        per_proc[pid][classify(rest or ["<no Python frame>"])] += int(count) / rate
    out, workers = {}, 0
    for pid, phases in per_proc.items():
        cmd = command[pid]
        if cmd == "parent":
            out["parent"] = dict(phases)
        elif "LokyProcess" in cmd:
            workers += 1
            out[f"worker {workers}"] = dict(phases)
    return out


def timeline(db: Path, spawn: float, exited: float) -> dict[str, float]:
    """Seconds from spawn to: the parent run, the first job's run, the last job's end, the parent closed, exit."""
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT r.start_time / 1000.0, r.end_time / 1000.0, t.value FROM runs r JOIN tags t "
            "ON t.run_uuid = r.run_uuid AND t.key = 'layerlab.role'"
        ).fetchall()
    parent = next(r for r in rows if r[2] == "parent")
    jobs = [r for r in rows if r[2] == "job"]
    return {
        "parent run created": parent[0] - spawn,
        "first job started": min(r[0] for r in jobs) - spawn,
        "last job ended": max(r[1] for r in jobs) - spawn,
        "parent run closed": parent[1] - spawn,
        "process exited": exited - spawn,
    }


def py_spy() -> str:
    exe = shutil.which("py-spy", path=str(Path(PYTHON).parent)) or shutil.which("py-spy")
    if exe is None:
        raise SystemExit(
            "bench.sweep_profile: py-spy is not installed; `pip install py-spy` "
            "(it is in the project's dev extra: `pip install -e '.[dev]'`)"
        )
    return exe


def record(cmd: list[str], raw: Path, rate: int, subprocesses: bool = False) -> float:
    """Run ``cmd`` under ``py-spy record --idle`` (raw collapsed stacks into ``raw``); its wall seconds."""
    spy = [py_spy(), "record", *(["--subprocesses"] if subprocesses else []), "--idle", "--format", "raw"]
    t0 = time.perf_counter()
    done = subprocess.run(
        [*spy, "--rate", str(rate), "--output", str(raw), "--", *cmd],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0 or not raw.exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise ChildFailed(f"py-spy record exited {done.returncode}:\n{tail}")
    return wall


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=None, help="jobs in the sweep (default 8, --quick 2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per job (default 20, --quick 1)")
    p.add_argument("--rate", type=int, default=50, help="py-spy samples per second (default 50)")
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    n = args.jobs or (2 if args.quick else 8)
    epochs = args.epochs or (1 if args.quick else 20)
    py_spy()  # says how to install it before anything runs
    header = Header(NAME, argv, args.quick, with_tf=False)
    jobs = jobs_of(n)
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-sweep-profile-") as tmp_name:
        tmp = Path(tmp_name)
        template = tmp / "template.db"
        make_store(template)
        # 1. unprofiled: the timeline
        plain = tmp / "plain"
        plain.mkdir()
        shutil.copyfile(template, plain / "mlflow.db")
        spawn = time.time()
        wall, proc = run_timed(sweep_cmd(plain, jobs, epochs, "joblib"), cwd=ROOT, timeout=3600)
        line = timeline(plain / "mlflow.db", spawn, spawn + wall)
        if finished_jobs(plain / "mlflow.db") != n:
            raise ChildFailed(f"the unprofiled sweep finished {finished_jobs(plain / 'mlflow.db')} of {n} jobs")
        say(f"unprofiled sweep: {wall:.1f} s; " + "; ".join(f"{k} at {v:.2f} s" for k, v in line.items()))
        # 2. profiled
        prof = tmp / "profiled"
        prof.mkdir()
        shutil.copyfile(template, prof / "mlflow.db")
        raw = prof / "py-spy.txt"
        prof_wall = record(sweep_cmd(prof, jobs, epochs, "joblib"), raw, args.rate, subprocesses=True)
        if finished_jobs(prof / "mlflow.db") != n:
            raise ChildFailed(f"the profiled sweep finished {finished_jobs(prof / 'mlflow.db')} of {n} jobs")
        phases = parse_raw(raw.read_text(), args.rate)
    data = {
        "jobs": n,
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


NO_WORKER = "py-spy sampled no worker process"


def summary(d: dict) -> list[list[str]]:
    """No target of its own: where the time goes, in one row (the profile explains section 2)."""
    t = d["timeline"]
    workers = [v for k, v in d["phases"].items() if k.startswith("worker")]
    imports = sum(w.get(PHASES[0][0], 0.0) for w in workers) / max(1, len(workers))
    fit = sum(w.get("job: fit (training + validation epochs)", 0.0) for w in workers) / d["jobs"]
    first, last = t["first job started"], t["last job ended"]
    before, during = (
        (f"imports {imports:.1f} s per worker", f"fit {fit:.2f} s per job")
        if workers
        else ("workers not sampled", None)
    )  # nothing to average when py-spy saw no worker
    jobs = f"{last - first:.1f} s of jobs" + (f" ({during})" if during else "")
    return [
        [
            "2b. sweep profile",
            f"joblib sweep of {d['jobs']} jobs: where the time goes (no target)",
            f"{first:.1f} s before the first job ({before}), {jobs}, {t['process exited'] - last:.1f} s after the last",
            "n/a",
        ]
    ]


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    phases = d["phases"]
    workers = sorted(k for k in phases if k.startswith("worker"))
    names = [p for p, _ in PHASES] + [OTHER]
    totals = {k: sum(v.values()) for k, v in phases.items()}
    rows = []
    for name in names:
        par = phases.get("parent", {}).get(name, 0.0)
        ws = [phases[w].get(name, 0.0) for w in workers]
        if par < 0.005 and sum(ws) < 0.005:
            continue
        rows.append([name, f"{par:.2f}", *(f"{w:.2f}" for w in ws), f"{sum(ws) / d['jobs']:.2f}"])
    rows.append(
        [
            "**all (main thread wall time)**",
            f"{totals.get('parent', 0):.2f}",
            *(f"{totals[w]:.2f}" for w in workers),
            f"{sum(totals[w] for w in workers) / d['jobs']:.2f}",
        ]
    )
    steps = list(d["timeline"].items())
    tl_rows, prev = [], 0.0
    for label, at in steps:
        tl_rows.append([label, f"{at:.2f}", f"{at - prev:.2f}"])
        prev = at
    md = [
        f"One joblib sweep (2 workers) of {d['jobs']} jobs (`abs`/`relu` x seeds, {d['epochs']} epochs, "
        "mnist_sample, everything logged), into a copy of an empty, migrated SQLite store.",
        "",
        f"Timeline of the unprofiled run ({d['wall']:.1f} s, CPU {d['cpu']:.0f} s), from the store's run times:",
        "",
        table(["from spawn to", "at s", "stretch s"], tl_rows),
        "",
        f"Profile (`py-spy record --subprocesses --idle --rate {d['rate']}`; the profiled run took "
        f"{d['profiled_wall']:.1f} s, {d['profiled_wall'] / d['wall']:.2f}x the unprofiled one). Seconds of each "
        "process's main thread per phase; a sample goes to the first phase whose rule matches its stack "
        "(`bench/sweep_profile.py: PHASES`), so imports inside a job count as imports:",
        "",
        table(["phase", "parent s", *(f"{w} s" for w in workers), "workers per job s"], rows),
    ]
    if not workers:  # seen once, in the test suite's --quick run on a loaded machine: the jobs ran, no worker sampled
        md += [
            "",
            f"**{NO_WORKER}** in this run, though its jobs ran in them: the profile covers the parent only. "
            "Rerun on a quiet machine for the workers' columns.",
        ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    run_script(main, "sweep_profile")
