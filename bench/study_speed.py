"""The lecture's study on full MNIST as a sweep, fused and unfused, against a plain Keras loop (issue 37).

    python -m bench.study_speed [--quick] [--epochs 20] [--precision] [--out FILE]

One call, every way a whole process (spawn to exit), in turn:

* **plain loop**: this file run as ``--plain-loop``: one process fits the 10
  models (lambda_mlp as the lecture writes it: Flatten, Lambda rescale,
  Dense 128, Lambda abs/relu, Dense 10 softmax; Adam 1e-3; batch 1024) one
  after another on the same full-MNIST splits as layerlab (``load_dataset``,
  54,000 / 6,000 / 10,000), validating each epoch, ``model.fit`` on NumPy
  arrays; no tracking;
* **sweep**: ``python runner.py -m dataset=mnist model=lambda_mlp
  model.activation=abs,relu seed=0,1,2,3,4 training.epochs=20`` (the
  default launcher, everything tracked into a fresh SQLite store);
* **sweep, closes before the next job**: the same with
  ``sweep.close_in_background=false`` (each job closes its run before the
  next starts; by default a job's run is closed while the next job trains);
* **sweep fused**: the same plus ``sweep.fuse_replicates=true`` (a group's
  runs are closed while the next group trains);
* **sweep fused, closes before the next job**: the same with
  ``sweep.close_in_background=false`` (each group closes its runs, then the
  next group starts: the A/B of ``experiments/job/background_close.py``);
* **sweep, layerlab launcher** / **sweep fused, layerlab launcher**: the
  same two with ``hydra/launcher=layerlab`` (one worker process per core,
  each running whole jobs on one thread: ``conf/hydra/launcher/layerlab.yaml``);
* with ``--precision``, where the CPU has bfloat16 instructions: **sweep
  fused bf16**, the same plus ``training.precision=mixed_bfloat16``.

Reported: each way's wall time and CPU seconds, the ratio to the plain
loop against the issue's targets (fused <= 0.5x in float32, <= 0.3x with
bfloat16), and each sweep's mean test accuracy over its 10 runs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import PYTHON, ROOT, ChildFailed, Header, finish, parser, run_timed, say, table, verdict
from bench.sweep_vs_shell import finished_jobs, make_store

NAME = "study_speed"
TITLE = "The study on full MNIST: sweep fused and unfused vs a plain Keras loop (issue 37)"
TARGETS = {
    "sweep fused": 0.5,
    "sweep fused, layerlab launcher": 0.5,
    "sweep fused bf16": 0.3,
    "sweep fused bf16, layerlab launcher": 0.3,
}
SEEDS = (0, 1, 2, 3, 4)
ACTIVATIONS = ("abs", "relu")


def plain_loop(epochs: int, limit: int | None) -> None:
    """The 10 fits one after another in this process (the baseline)."""
    import keras
    import tensorflow as tf

    from bench.step_profile import compose
    from experiments.config.schema import validate
    from experiments.data import load_dataset

    for activation in ACTIVATIONS:
        for seed in SEEDS:
            cfg = validate(compose(["dataset=mnist", *([f"dataset.limit={limit}"] if limit else [])]))
            data = load_dataset(cfg.dataset, seed)
            keras.utils.set_random_seed(seed)
            act = tf.abs if activation == "abs" else tf.nn.relu
            model = keras.Sequential(
                [
                    keras.Input((28, 28), dtype="uint8"),
                    keras.layers.Flatten(),
                    keras.layers.Lambda(lambda x: tf.cast(x, "float32") / 255.0),
                    keras.layers.Dense(128),
                    keras.layers.Lambda(act),
                    keras.layers.Dense(10, activation="softmax"),
                ]
            )
            model.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss="sparse_categorical_crossentropy",
                metrics=["sparse_categorical_accuracy"],
            )
            model.fit(*data.train, validation_data=data.val, epochs=epochs, batch_size=1024, verbose=0)
            print(
                "test",
                model.evaluate(*data.test, batch_size=1024, verbose=0, return_dict=True)["sparse_categorical_accuracy"],
                flush=True,
            )


def sweep_cmd(work: Path, epochs: int, extra: list[str], limit: int | None) -> list[str]:
    return [
        PYTHON,
        str(ROOT / "runner.py"),
        "-m",
        "dataset=mnist",
        "model=lambda_mlp",
        f"model.activation={','.join(ACTIVATIONS)}",
        f"seed={','.join(map(str, SEEDS))}",
        f"training.epochs={epochs}",
        *([f"dataset.limit={limit}"] if limit else []),
        *extra,
        f"tracking.uri=sqlite:///{work / 'mlflow.db'}",
        f"tracking.artifact_root={(work / 'mlartifacts').as_uri()}",
        f"hydra.sweep.dir={work / 'multirun'}",
    ]


LAUNCHER = ["hydra/launcher=layerlab"]  # one worker process per core, each job on its own core
FUSED, BF16 = ["sweep.fuse_replicates=true"], ["training.precision=mixed_bfloat16"]
WAYS = {
    "plain loop": None,
    "sweep": [],
    "sweep, closes before the next job": ["sweep.close_in_background=false"],
    "sweep fused": ["sweep.fuse_replicates=true"],
    "sweep fused, closes before the next job": [*FUSED, "sweep.close_in_background=false"],
    "sweep, layerlab launcher": LAUNCHER,
    "sweep fused, layerlab launcher": [*LAUNCHER, "sweep.fuse_replicates=true"],
    "sweep fused bf16": ["sweep.fuse_replicates=true", "training.precision=mixed_bfloat16"],
    "sweep fused bf16, layerlab launcher": [*LAUNCHER, *FUSED, *BF16],
}


def _test_accuracy(db: Path) -> float:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT value FROM latest_metrics WHERE key = 'test_sparse_categorical_accuracy'").fetchall()
    return sum(r[0] for r in rows) / max(len(rows), 1)


def measure(args) -> dict:
    from experiments.training.precision import cpu_bf16_flags

    bf16 = args.precision and cpu_bf16_flags()
    ways = [w for w in args.ways or WAYS if "bf16" not in w or bf16]
    if "plain loop" not in ways:
        ways.insert(0, "plain loop")  # the baseline of this call
    limit = 1200 if args.quick else None
    epochs = 1 if args.quick else args.epochs
    runs: dict[str, list[dict]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-study-") as tmp_name:
        tmp = Path(tmp_name)
        template = make_store(tmp / "template" / "mlflow.db")
        # Rounds interleave the ways (round 1: every way, round 2: every way, ...): a slower minute of the
        # machine falls on every way alike.
        for round_, way in ((r, w) for r in range(args.rounds) for w in ways):
            work = tmp / (f"{round_}_" + "".join(c if c.isalnum() else "_" for c in way))  # no comma: Hydra sweeps it
            work.mkdir(parents=True)
            load = os.getloadavg()[0]
            if WAYS[way] is None:
                cmd = [
                    PYTHON,
                    "-m",
                    "bench.study_speed",
                    "--plain-loop",
                    "--epochs",
                    str(epochs),
                    *(["--limit", str(limit)] if limit else []),
                ]
                wall, proc = run_timed(cmd, cwd=ROOT, timeout=7200)
                accs = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("test ")]
                acc, done = sum(accs) / max(len(accs), 1), len(accs)
            else:
                shutil.copyfile(template, work / "mlflow.db")
                wall, proc = run_timed(sweep_cmd(work, epochs, WAYS[way], limit), cwd=ROOT, timeout=7200)
                done, acc = finished_jobs(work / "mlflow.db"), _test_accuracy(work / "mlflow.db")
            if done != 10:
                raise ChildFailed(f"{way}: {done} of 10 runs finished")
            runs[way].append({"wall": wall, "cpu": proc.cpu_s, "load": load, "test_accuracy": acc})
            say(f"{way:17s} {wall:7.1f} s  CPU {proc.cpu_s:6.0f} s  load before {load:.2f}  test acc {acc:.4f}")
            time.sleep(1)
    results = {
        way: {
            "wall": statistics.median(r["wall"] for r in rs),
            "walls": [r["wall"] for r in rs],
            "cpu": statistics.median(r["cpu"] for r in rs),
            "load": rs[0]["load"],
            "loads": [r["load"] for r in rs],
            "test_accuracy": rs[0]["test_accuracy"],
        }
        for way, rs in runs.items()
    }
    return {
        "results": results,
        "epochs": epochs,
        "quick": args.quick,
        "bf16_flags": cpu_bf16_flags(),
        "rounds": args.rounds,
    }


def render(d: dict) -> str:
    res = d["results"]
    base = res["plain loop"]["wall"]
    rounds = int(d.get("rounds", 1))
    base_walls = res["plain loop"].get("walls", [base])

    def per_round(r: dict) -> list[str]:  # each round's wall, and its ratio to the same round's plain loop
        if rounds < 2:
            return []
        walls = r.get("walls", [r["wall"]])
        return [" / ".join(f"{w:.1f}" for w in walls), " / ".join(f"{w / b:.2f}x" for w, b in zip(walls, base_walls))]

    rows = [
        [
            w,
            f"{r['wall']:.1f}",
            *per_round(r),
            f"{r['cpu']:.0f}",
            f"{r['wall'] / base:.2f}x",
            " / ".join(f"{x:.2f}" for x in r.get("loads", [r["load"]])),
            f"{r['test_accuracy']:.4f}",
        ]
        for w, r in res.items()
    ]
    heads = ["way", "wall s" + (", median" if rounds > 1 else "")]
    heads += ["wall s, each round", "vs plain loop, each round"] if rounds > 1 else []
    heads += ["CPU s", "vs plain loop", "load (1 min) before", "mean test accuracy"]
    checks = [
        [f"{w} / plain loop <= {t}", f"{res[w]['wall'] / base:.2f}", verdict(res[w]["wall"] / base <= t)]
        for w, t in TARGETS.items()
        if w in res
    ]
    return "\n".join(
        [
            f"10 runs of lambda_mlp ({', '.join(ACTIVATIONS)} x seeds {', '.join(map(str, SEEDS))}), {d['epochs']} "
            "epochs, batch 1024, "
            + ("1,200 MNIST digits (--quick)" if d["quick"] else "full MNIST (54,000 / 6,000 / 10,000)")
            + ", one command per way in one call (whole "
            "process, spawn to exit)"
            + (f", {rounds} rounds, the ways interleaved; medians" if rounds > 1 else "")
            + f". CPU bfloat16 flags: {', '.join(d['bf16_flags']) or 'none'}.",
            "",
            table(heads, rows),
            "",
            table(["target", "measured", "result"], checks),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--precision", action="store_true", help="also the fused sweeps in mixed_bfloat16")
    p.add_argument("--rounds", type=int, default=1, help="run every way this many times, interleaved; medians")
    p.add_argument("--ways", nargs="+", choices=list(WAYS), default=None, help="only these ways (and the plain loop)")
    p.add_argument("--plain-loop", action="store_true", help=argparse_hidden())
    p.add_argument("--limit", type=int, default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.plain_loop:
        plain_loop(args.epochs, args.limit)
        return 0
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    run_timed([PYTHON, "-m", "experiments.data.fetch", "mnist"], cwd=ROOT, timeout=1800)
    header = Header(NAME, argv, args.quick, with_tf=False)
    return finish(args, NAME, TITLE, header, measure(args), render)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
