"""Sweeps at the machine's speed: N jobs four ways, alternating (GitHub issues 16 and 21).

    python -m bench.sweep_vs_shell [--quick] [--sizes 8 20] [--rounds 2] [--epochs 20] [--out FILE]

The same N jobs of the lecture's section-4 experiment (the Lambda MLP,
``abs`` and ``relu`` x N/2 seeds, 20 epochs, batch 1024, the 5,000 offline
MNIST digits) are run, in one call and alternating:

* **shell**: the hand-written lecture script (``bench/plain_keras.py``) N
  times through ``xargs -P 2``: two processes at a time, each importing
  TensorFlow itself, nothing tracked;
* **basic**: ``python runner.py -m model.activation=abs,relu seed=...`` with
  Hydra's basic launcher (one job after the other, in one process);
* **joblib**: the same sweep with ``hydra/launcher=joblib
  hydra.launcher.n_jobs=2`` (two warm worker processes);
* **layerlab**: the same sweep with ``hydra/launcher=layerlab
  hydra.launcher.n_jobs=2``, the launcher that survives a killed worker and
  the one the docs' parallel examples use (target: as fast as joblib,
  at most 1.05x its time).

Both sweeps track everything layerlab tracks by default (params, per-epoch
metrics, checkpoints, plots, the model, the sweep's parent run and its
statistical comparison).  Each sweep writes to its own copy of an empty
SQLite store made once before the rounds: every sweep after a researcher's
first finds its store migrated (creating one costs about 1 s more once,
measured in section 1).  The single run is timed too, as a whole process
against one plain script (target: at most 1.05x).

Reported per size: whole-command wall time (spawn to exit; median, range),
jobs per minute, the ratios joblib / basic and joblib / shell against their
targets (<= 0.6 and <= 0.7), CPU seconds of all processes, and the machine's
load average before each command.  Where the time inside a joblib sweep goes
is ``python -m bench.sweep_profile`` (section 2b).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import (
    PYTHON,
    QUICK_NOTE,
    ROOT,
    ChildFailed,
    Header,
    finish,
    median,
    parser,
    run_script,
    run_timed,
    say,
    spread,
    table,
    verdict,
)

NAME = "sweep_vs_shell"
TITLE = "2. Sweeps at the machine's speed: shell loop vs basic vs joblib"
TARGET_JOBLIB_BASIC = 0.6
TARGET_JOBLIB_SHELL = 0.7
TARGET_SINGLE = 1.05
TARGET_LAYERLAB_JOBLIB = 1.05
WAYS = ("shell", "basic", "joblib", "layerlab")
WORKERS = 2


def jobs_of(n: int) -> list[tuple[str, int]]:
    """N jobs: abs and relu for seeds 0..N/2-1 (N odd: one more abs)."""
    return [(act, seed) for seed in range((n + 1) // 2) for act in ("abs", "relu")][:n]


def make_store(path: Path) -> Path:
    """An empty, migrated MLflow SQLite store at ``path`` (copied for every sweep); its folder is made too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = f"import mlflow; mlflow.MlflowClient(tracking_uri={f'sqlite:///{path}'!r}).search_experiments()"
    run_timed([PYTHON, "-c", code], cwd=path.parent, timeout=300)
    return path


def tracking_args(work: Path) -> list[str]:
    return [
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        f"tracking.artifact_root={(work / 'mlartifacts').as_uri()}",
        "tracking.experiment=bench-sweep-vs-shell",
    ]


def sweep_cmd(work: Path, jobs: list[tuple[str, int]], epochs: int, way: str) -> list[str]:
    acts = sorted({a for a, _ in jobs})
    seeds = sorted({s for _, s in jobs})
    launcher = [f"hydra/launcher={way}", f"hydra.launcher.n_jobs={WORKERS}"] if way in ("joblib", "layerlab") else []
    return [
        PYTHON,
        str(ROOT / "runner.py"),
        "-m",
        "model.activation=" + ",".join(acts),
        "seed=" + ",".join(map(str, seeds)),
        f"training.epochs={epochs}",
        *tracking_args(work),
        f"hydra.sweep.dir={work / 'multirun'}",
        *launcher,
    ]


def shell_cmd(work: Path, jobs: list[tuple[str, int]], epochs: int) -> list[str]:
    """``xargs -P 2`` over one plain-script command line per job (its output goes to a log file)."""
    lines = work / "jobs.txt"
    script = shlex.quote(str(ROOT / "bench" / "plain_keras.py"))
    lines.write_text(
        "".join(
            f"{shlex.quote(PYTHON)} {script} --epochs {epochs} --seed {s} --activation {a} "
            f">> {shlex.quote(str(work / 'shell.log'))} 2>&1\n"
            for a, s in jobs
        )
    )
    return ["sh", "-c", f"xargs -P {WORKERS} -I CMD sh -c CMD < {shlex.quote(str(lines))}"]


def finished_jobs(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT count(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'layerlab.role' AND t.value = 'job' AND r.status = 'FINISHED'"
        ).fetchone()[0]


def one(work: Path, template: Path, way: str, jobs: list[tuple[str, int]], epochs: int) -> dict:
    """One command of ``way`` in a fresh folder; checks that every job really ran."""
    work.mkdir(parents=True)
    load = os.getloadavg()[0]
    if way == "shell":
        wall, proc = run_timed(shell_cmd(work, jobs, epochs), cwd=ROOT, timeout=3600)
        done = (work / "shell.log").read_text().count("test_sparse_categorical_accuracy=")
    else:
        shutil.copyfile(template, work / "mlflow.db")
        wall, proc = run_timed(sweep_cmd(work, jobs, epochs, way), cwd=ROOT, timeout=3600)
        done = finished_jobs(work / "mlflow.db")
    if done != len(jobs):
        raise ChildFailed(f"{way}: {done} of {len(jobs)} jobs finished (see {work})")
    return {"wall": wall, "cpu": proc.cpu_s, "load": load, "per_min": len(jobs) / wall * 60}


def single(work: Path, template: Path, way: str, epochs: int) -> dict:
    """One job as a whole process: the plain script, or ``python runner.py`` with its store already there."""
    work.mkdir(parents=True)
    if way == "plain":
        cmd = [PYTHON, str(ROOT / "bench" / "plain_keras.py"), "--epochs", str(epochs)]
    else:
        shutil.copyfile(template, work / "mlflow.db")
        cmd = [
            PYTHON,
            str(ROOT / "runner.py"),
            f"training.epochs={epochs}",
            *tracking_args(work),
            f"hydra.run.dir={work / 'outputs'}",
        ]
    wall, proc = run_timed(cmd, cwd=ROOT, timeout=900)
    return {"wall": wall, "cpu": proc.cpu_s}


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="jobs per sweep (default 8 20, --quick 2)")
    p.add_argument("--rounds", type=int, default=None, help="commands per way and size, alternating (default 2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per job (default 20, the lecture's; --quick 1)")
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    quick = args.quick
    sizes = args.sizes or ([2] if quick else [8, 20])
    rounds = args.rounds or (1 if quick else 2)
    epochs = args.epochs or (1 if quick else 20)
    header = Header(NAME, argv, quick, with_tf=False)  # the children import TensorFlow, not this process
    results: dict[str, dict[str, list[dict]]] = {str(n): {w: [] for w in WAYS} for n in sizes}
    singles: dict[str, list[dict]] = {"plain": [], "runner": []}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-sweep-vs-shell-") as tmp_name:
        tmp = Path(tmp_name)
        template = make_store(tmp / "template" / "mlflow.db")
        k = 0
        for rnd in range(rounds):
            for way in ("plain", "runner") if rnd % 2 == 0 else ("runner", "plain"):
                k += 1
                r = single(tmp / f"{k:03d}-single-{way}", template, way, epochs)
                singles[way].append(r)
                say(f"round {rnd + 1}/{rounds} single {way:7s} {r['wall']:.1f} s")
            for n in sizes:
                order = WAYS if rnd % 2 == 0 else tuple(reversed(WAYS))  # alternate who goes first
                for way in order:
                    k += 1
                    r = one(tmp / f"{k:03d}-{n}-{way}", template, way, jobs_of(n), epochs)
                    results[str(n)][way].append(r)
                    say(
                        f"round {rnd + 1}/{rounds} N={n:<3d} {way:7s} {r['wall']:6.1f} s  "
                        f"{r['per_min']:5.1f} jobs/min  CPU {r['cpu']:.0f} s  load before {r['load']:.2f}"
                    )
                    time.sleep(1)  # let the load of one command fade before the next
    data = {
        "results": results,
        "singles": singles,
        "epochs": epochs,
        "rounds": rounds,
        "quick": quick,
        "workers": WORKERS,
    }
    return finish(args, NAME, TITLE, header, data, render)


def _ratios(d: dict, n: str) -> tuple[float, float, float]:
    res = d["results"][n]
    shell, basic, joblib = (median(r["wall"] for r in res[w]) for w in ("shell", "basic", "joblib"))
    return joblib / basic, joblib / shell, basic / shell


def _layerlab_ratio(d: dict, n: str) -> float | None:
    """layerlab / joblib, or None for results saved before the fourth way existed."""
    res = d["results"][n]
    if not res.get("layerlab"):
        return None
    return median(r["wall"] for r in res["layerlab"]) / median(r["wall"] for r in res["joblib"])


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    rows = []
    for n in d["results"]:
        jb, js, _ = _ratios(d, n)
        rows.append(
            [
                f"2. sweeps (N={n})",
                f"joblib / basic <= {TARGET_JOBLIB_BASIC}",
                f"{jb:.2f}",
                verdict(jb <= TARGET_JOBLIB_BASIC),
            ]
        )
        rows.append(
            [
                f"2. sweeps (N={n})",
                f"joblib / shell loop <= {TARGET_JOBLIB_SHELL}",
                f"{js:.2f}",
                verdict(js <= TARGET_JOBLIB_SHELL),
            ]
        )
        lj = _layerlab_ratio(d, n)
        if lj is not None:
            rows.append(
                [
                    f"2. sweeps (N={n})",
                    f"layerlab / joblib <= {TARGET_LAYERLAB_JOBLIB}",
                    f"{lj:.2f}",
                    verdict(lj <= TARGET_LAYERLAB_JOBLIB),
                ]
            )
    s = d["singles"]
    ratio = median(r["wall"] for r in s["runner"]) / median(r["wall"] for r in s["plain"])
    rows.append(
        [
            "2. single run",
            f"runner.py <= {TARGET_SINGLE}x plain script (store exists)",
            f"{ratio:.2f}x",
            verdict(ratio <= TARGET_SINGLE),
        ]
    )
    return rows


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    epochs, rounds = d["epochs"], d["rounds"]
    rows, targets = [], []
    for n, res in d["results"].items():
        for way in WAYS:
            runs = res.get(way)
            if not runs:
                continue
            rows.append(
                [
                    n,
                    way,
                    spread([r["wall"] for r in runs], 1),
                    f"{median(r['per_min'] for r in runs):.1f}",
                    f"{median(r['cpu'] for r in runs):.0f}",
                    " / ".join(f"{r['load']:.2f}" for r in runs),
                ]
            )
        jb, js, bs = _ratios(d, n)
        targets += [
            [
                n,
                f"joblib / basic <= {TARGET_JOBLIB_BASIC}",
                f"{jb:.2f} ({1 / jb:.2f}x faster)",
                verdict(jb <= TARGET_JOBLIB_BASIC),
            ],
            [
                n,
                f"joblib / shell loop <= {TARGET_JOBLIB_SHELL}",
                f"{js:.2f} ({1 / js:.2f}x faster)",
                verdict(js <= TARGET_JOBLIB_SHELL),
            ],
            [n, "basic / shell loop (no target)", f"{bs:.2f}", "n/a"],
        ]
        lj = _layerlab_ratio(d, n)
        if lj is not None:
            targets.append(
                [
                    n,
                    f"layerlab / joblib <= {TARGET_LAYERLAB_JOBLIB} (survives a killed worker)",
                    f"{lj:.2f}",
                    verdict(lj <= TARGET_LAYERLAB_JOBLIB),
                ]
            )
    s = d["singles"]
    plain, runner = (median(r["wall"] for r in s[w]) for w in ("plain", "runner"))
    targets.append(
        [
            "single",
            f"single run: runner.py <= {TARGET_SINGLE}x the plain script",
            f"{runner / plain:.2f}x ({runner:.1f} s vs {plain:.1f} s)",
            verdict(runner / plain <= TARGET_SINGLE),
        ]
    )
    md = [
        f"N jobs of the lecture's section-4 experiment (Lambda MLP, `abs`/`relu` x N/2 seeds, {epochs} epochs, "
        f"batch 1024, mnist_sample), {rounds} command(s) per way and size, alternating the order. **shell**: "
        f"`bench/plain_keras.py` N times through `xargs -P {d['workers']}` (nothing tracked); **basic**: "
        "`python runner.py -m model.activation=abs,relu seed=...` (Hydra's basic launcher); **joblib**: the same "
        f"with `hydra/launcher=joblib hydra.launcher.n_jobs={d['workers']}`; **layerlab**: the same with "
        f"`hydra/launcher=layerlab hydra.launcher.n_jobs={d['workers']}` (survives a killed worker). "
        "The sweeps log everything layerlab "
        "logs by default (params, per-epoch metrics, checkpoints, plots, the model, the parent run and its "
        "comparison), each to its own copy of an empty, migrated SQLite store.",
        "",
        table(["N", "way", "whole command s", "jobs/min", "CPU s (all processes)", "load (1 min) before each"], rows),
        "",
        table(["N", "target", "measured (medians)", "result"], targets),
    ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    run_script(main, "sweep_vs_shell")
