"""Do sweeps scale with cores?  (GitHub issue 8, question 2)

    python -m bench.sweep_throughput [--quick] [--repeats 2] [--seeds 6] [--epochs 3] [--out FILE]

One sweep of ``2 activations x N seeds`` short jobs (default 12 jobs of 3
epochs on mnist_sample) run with Hydra's basic launcher (one job after the
other, in one process) and with ``hydra/launcher=joblib`` and 2 workers,
alternating. Each sweep logs to a fresh SQLite store in a temporary folder,
from which the job runs' start and end times and their ``epoch_time_s``
histories are read back.

Reported: jobs per minute over the whole command (spawn to exit, includes the
sweep's start and its final comparison) and over the jobs' span (first job
start to last job end), the speed-up of joblib, and the fixed per-job
overhead: the time of a job's MLflow run outside ``fit`` (run duration minus
the sum of its epochs' ``epoch_time_s``), plus, for the basic launcher, the
gap between one job's run and the next (Hydra's job set-up and the job's
start before its MLflow run).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from bench.common import (PYTHON, ROOT, ChildFailed, Header, finish, fmt, median, parser, run_timed, say, spread, table,
                          verdict)

NAME = "sweep_throughput"
TITLE = "2. Sweep throughput: basic launcher vs joblib (2 workers)"
TARGET_SPEEDUP = 1.6
LAUNCHERS = {"basic": [], "joblib (2 workers)": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}


def sweep_cmd(work: Path, seeds: int, epochs: int, launcher: list[str]) -> list[str]:
    return [PYTHON, str(ROOT / "runner.py"), "-m", "model.activation=abs,relu",
            "seed=" + ",".join(str(s) for s in range(seeds)), f"training.epochs={epochs}",
            f"tracking.uri=sqlite:///{work / 'mlflow.db'}", f"tracking.artifact_root={(work / 'mlartifacts').as_uri()}",
            "tracking.experiment=bench-sweep", f"hydra.sweep.dir={work / 'multirun'}", *launcher]


def read_store(db_path: Path) -> dict:
    """Job and parent runs (times in s) and each job's epoch_time_s list, from the SQLite store."""
    with sqlite3.connect(db_path) as db:
        roles = dict(db.execute("SELECT run_uuid, value FROM tags WHERE key='layerlab.role'").fetchall())
        runs = {rid: (start / 1000, (end or 0) / 1000, status) for rid, start, end, status in
                db.execute("SELECT run_uuid, start_time, end_time, status FROM runs").fetchall()}
        epochs: dict[str, list[tuple[int, float]]] = {}
        for rid, step, value in db.execute("SELECT run_uuid, step, value FROM metrics WHERE key='epoch_time_s'"):
            epochs.setdefault(rid, []).append((step, value))
    jobs = [(rid, *runs[rid]) for rid, role in roles.items() if role == "job"]
    parent = [runs[rid] for rid, role in roles.items() if role == "parent"]
    return {"jobs": sorted(jobs, key=lambda j: j[1]), "parent": parent[0] if parent else None,
            "epochs": {rid: [v for _, v in sorted(vals)] for rid, vals in epochs.items()}}


def one_sweep(work: Path, label: str, seeds: int, epochs: int) -> dict:
    work.mkdir(parents=True)
    import time

    spawn = time.time()
    wall, proc = run_timed(sweep_cmd(work, seeds, epochs, LAUNCHERS[label]), cwd=work, timeout=1800)
    store = read_store(work / "mlflow.db")
    jobs = store["jobs"]
    n = len(jobs)
    finished = sum(1 for j in jobs if j[3] == "FINISHED")
    if finished != 2 * seeds:
        raise ChildFailed(f"{label}: {finished} of {2 * seeds} jobs finished")
    first_start, last_end = min(j[1] for j in jobs), max(j[2] for j in jobs)
    durations = [end - start for _, start, end, _ in jobs]
    fit = [sum(store["epochs"].get(rid, [])) for rid, *_ in jobs]
    outside = [d - f for d, f in zip(durations, fit)]
    gaps = [b[1] - a[2] for a, b in zip(jobs, jobs[1:])] if label == "basic" else []
    return {
        "jobs": n, "wall": wall, "cpu": proc.cpu_s, "span": last_end - first_start,
        "per_min": n / wall * 60, "per_min_span": n / (last_end - first_start) * 60,
        "duration": median(durations), "fit": median(fit), "outside": median(outside),
        "gap": median(gaps) if gaps else float("nan"),
        "startup": first_start - spawn, "finish": spawn + wall - last_end,
        "epoch": median(t for rid, *_ in jobs for t in store["epochs"].get(rid, [])[1:]),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=None, help="sweeps per launcher, alternating (default 2, --quick 1)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per activation (default 6, --quick 1)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per job (default 3, --quick 1)")
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 2)
    seeds = args.seeds or (1 if quick else 6)
    epochs = args.epochs or (1 if quick else 3)
    header = Header(NAME, argv, quick, with_tf=False)  # the runs import TensorFlow, not this process
    results: dict[str, list[dict]] = {k: [] for k in LAUNCHERS}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        k = 0
        for rnd in range(repeats):
            for label in LAUNCHERS:
                k += 1
                r = one_sweep(tmp / f"{k:02d}", label, seeds, epochs)
                results[label].append(r)
                say(f"round {rnd + 1}/{repeats} {label:20s} {r['jobs']} jobs in {r['wall']:.1f} s: "
                    f"{r['per_min']:.1f} jobs/min (span {r['per_min_span']:.1f}); job {r['duration']:.2f} s, "
                    f"fit {r['fit']:.2f} s, outside fit {r['outside']:.2f} s")
    data = {"results": results, "seeds": seeds, "epochs": epochs, "repeats": repeats, "quick": quick}
    return finish(args, NAME, TITLE, header, data, render)


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    res = d["results"]
    base = median(r["per_min"] for r in res["basic"])
    par = median(r["per_min"] for r in res["joblib (2 workers)"])
    return [["2. sweeps", f"joblib (2 workers) jobs/min >= {TARGET_SPEEDUP}x basic",
             f"{par / base:.2f}x ({par:.1f} vs {base:.1f} jobs/min, {res['basic'][0]['jobs']} jobs)",
             verdict(par / base >= TARGET_SPEEDUP)]]


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    return report(d["results"], d["seeds"], d["epochs"], d["repeats"], d["quick"])


def report(results: dict[str, list[dict]], seeds: int, epochs: int, repeats: int, quick: bool) -> str:
    def med(label, key):
        return median(r[key] for r in results[label])

    rows = []
    for label, runs in results.items():
        rows.append([label, runs[0]["jobs"], spread([r["wall"] for r in runs], 1), spread([r["per_min"] for r in runs], 1),
                     spread([r["per_min_span"] for r in runs], 1), f"{med(label, 'startup'):.1f}",
                     f"{med(label, 'finish'):.1f}", f"{med(label, 'cpu'):.0f}"])
    base, par = "basic", "joblib (2 workers)"
    speed = med(par, "per_min") / med(base, "per_min")
    speed_span = med(par, "per_min_span") / med(base, "per_min_span")
    serial_start, serial_end = med(base, "startup"), med(base, "finish")
    parallel = med(base, "wall") - serial_start - serial_end
    ideal = serial_start + serial_end + parallel / 2
    bound = med(base, "wall") / ideal
    jrows = [[label, f"{med(label, 'duration'):.2f}", f"{med(label, 'fit'):.2f}", fmt(med(label, "epoch"), 3),
              f"{med(label, 'outside'):.2f}", "-" if label != base else f"{med(label, 'gap'):.2f}"]
             for label in results]
    md = [
        f"Sweep `python runner.py -m model.activation=abs,relu seed=0..{seeds - 1} training.epochs={epochs}` "
        f"({2 * seeds} jobs, mnist_sample, default logging: checkpoints, plots, log_model, final comparison), "
        f"{repeats} sweep(s) per launcher, alternating; fresh SQLite store per sweep. The joblib launcher gives "
        "each of its 2 workers 1 TensorFlow thread (layerlab's sweep callback splits the cores).",
        "",
        table(["launcher", "jobs", "whole command s", "jobs/min (whole command)", "jobs/min (job span)",
               "start: spawn to 1st job run s", "end: last job to exit s (comparison)", "CPU s (all processes)"],
              rows),
        "",
        "| target | measured | result |",
        "|---|---|---|",
        f"| joblib jobs/min >= {TARGET_SPEEDUP}x basic (whole command) | {speed:.2f}x (job span only: {speed_span:.2f}x) "
        f"| {verdict(speed >= TARGET_SPEEDUP)} |",
        "",
        f"Upper bound from the basic sweeps (Amdahl): their start ({serial_start:.1f} s: imports, store, parent run) "
        f"and end ({serial_end:.1f} s: the comparison) run once whatever the launcher; if the jobs' "
        f"{parallel:.1f} s split perfectly over 2 workers, with no worker start-up cost, the whole command would "
        f"take {ideal:.1f} s: at most **{bound:.2f}x** the basic launcher's jobs per minute with this job size. "
        f"CPU time of all processes: basic {med(base, 'cpu'):.0f} s, joblib {med(par, 'cpu'):.0f} s "
        f"({med(par, 'cpu') - med(base, 'cpu'):+.0f} s: each joblib worker imports TensorFlow, Keras and MLflow "
        "itself, and two jobs share the two cores).",
        "",
        "Per job (medians): the MLflow run's duration, the time in `fit` (sum of the epochs' `epoch_time_s`), "
        "the fixed overhead outside `fit` (run duration minus time in fit: params, data, model, evaluate, "
        "plots, log_model, checkpoints between epochs) and, with the basic launcher, the gap from one job's run "
        "to the next (Hydra's job set-up and the job's start before its run):",
        "",
        table(["launcher", "job run s", "in fit s", "epoch_time_s (epochs 2..)", "outside fit s", "gap between jobs s"],
              jrows),
    ]
    if quick:
        md += ["", "_--quick run: tiny sizes, one sweep each; these numbers only show that the script works._"]
    return "\n".join(md)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ChildFailed as exc:
        print(f"bench.sweep_throughput: a sweep failed: {exc}", file=sys.stderr)
        sys.exit(1)
