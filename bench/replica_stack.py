"""R replicas in one fit: stacked (one batched product per layer) vs one branch per replica (issue 37).

    python -m bench.replica_stack [--quick] [--replicas 1,2,5,10,20] [--epochs 3]

For each R, one :class:`~experiments.training.fused.FusedReplicas` group of
lambda_mlp (seeds 0..R-1, batch 1024, ``dataset=mnist``) is built and fitted
``--epochs`` epochs in each of three ways, each way in its own process
(TensorFlow's thread counts are fixed when it starts):

* **stacked**: one batched product per layer for all replicas, TensorFlow's
  default threads (every core splits each op);
* **branches**: one branch per replica (``stack=False``), default threads;
* **branches side by side**: one branch per replica, one thread per op and
  as many ops at once as there are cores (what ``sweep.fuse_layout=auto``
  runs on TensorFlow's CPU: :func:`experiments.training.runtime.setup_runtime`
  with ``side_by_side``).

Reported per R and way: the setup (build, compile, fuse), the first epoch
(which traces the train step) minus a steady epoch (the tracing), and a
steady epoch's time per replica and step (validation included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import PYTHON, ROOT, Header, finish, median, parser, say, table
from bench.step_profile import compose, cpu_flags

NAME = "replica_stack"
TITLE = "Replicas per step: stacked vs one branch per replica (issue 37)"


WAYS = ("stacked", "branches", "branches side by side")


def measure(args) -> dict:
    """Each way in a child process (its own thread counts); the rows of all, in R order."""
    rows = []
    for way in WAYS:
        cmd = [PYTHON, "-m", "bench.replica_stack", "--child", way, "--replicas", ",".join(map(str, args.replicas))]
        cmd += ["--epochs", str(args.epochs), "--dataset", args.dataset]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{way}: exit {out.returncode}\n{out.stderr[-3000:]}")
        rows += json.loads(out.stdout.strip().splitlines()[-1])
    rows.sort(key=lambda r: (r["R"], WAYS.index(r["way"])))
    return {"rows": rows, "dataset": args.dataset, "epochs": args.epochs, "flags": cpu_flags()}


def measure_way(args, way: str) -> list[dict]:
    import keras

    from experiments.config.schema import validate
    from experiments.data import load_dataset, make_tf_dataset
    from experiments.models import build_model
    from experiments.training.callbacks import EpochTimer
    from experiments.training.compile import compile_model
    from experiments.training.fused import FusedReplicas
    from experiments.training.runtime import setup_runtime

    cfg = validate(
        compose(
            [
                f"dataset={args.dataset}",
                "model=lambda_mlp",
                "training.verbose=0",
                f"training.epochs={args.epochs}",
                *(["dataset.limit=3000"] if args.quick else []),
            ]
        )
    )
    setup_runtime(cfg, side_by_side=way == "branches side by side")
    cache: dict[int, object] = {}

    def data(seed):
        if seed not in cache:
            cache[seed] = load_dataset(cfg.dataset, seed)
        return cache[seed]

    def build_one(seed):
        return build_model(cfg.model_spec, input_shapes={"input": data(seed).input_shape})

    def datasets(seed):
        d, bs = data(seed), cfg.training.batch_size
        return {
            "train": make_tf_dataset(*d.train, bs, shuffle=True, seed=seed),
            "val": make_tf_dataset(*d.val, bs, shuffle=False, seed=seed),
            "test": make_tf_dataset(*d.test, bs, shuffle=False, seed=seed),
        }

    rows = []
    for r in args.replicas:
        seeds = list(range(r))
        for seed in seeds:
            data(seed)
        t0 = time.perf_counter()
        engine = FusedReplicas(build_one, seeds, lambda m: compile_model(m, cfg), stack=way == "stacked")
        setup_s = time.perf_counter() - t0
        timers = [[EpochTimer()] for _ in seeds]
        engine.fit(datasets, cfg.training.epochs, timers)
        epochs = engine.states[0].history.history["epoch_time_s"]
        steps = -(-len(data(0).train[1]) // cfg.training.batch_size)
        steady = median(epochs[1:])
        rows.append(
            {
                "R": r,
                "way": way,
                "stacked": engine.stacked,
                "setup_s": setup_s,
                "trace_s": epochs[0] - steady,
                "epoch_s": steady,
                "ms_per_replica_step": steady / steps / r * 1e3,
                "steps": steps,
            }
        )
        say(
            f"R={r:2d} {way:8s} setup {setup_s:5.1f} s, first epoch - steady {epochs[0] - steady:5.1f} s, "
            f"steady epoch {steady:5.2f} s, {rows[-1]['ms_per_replica_step']:.2f} ms per replica-step"
        )
        del engine
        keras.backend.clear_session()
    return rows


def render(d: dict) -> str:
    rows = [
        [
            r["R"],
            r["way"],
            f"{r['setup_s']:.1f}",
            f"{r['trace_s']:.1f}",
            f"{r['epoch_s']:.2f}",
            f"{r['ms_per_replica_step']:.2f}",
        ]
        for r in d["rows"]
    ]
    return "\n".join(
        [
            f"lambda_mlp, batch 1024, `dataset={d['dataset']}` ({d['rows'][0]['steps']} steps per epoch, validation "
            f"each epoch included), {d['epochs']} epochs per fit; one process per way: stacked and branches with "
            "TensorFlow's default threads (every core splits each op), branches side by side with one thread per "
            "op and the ops of different replicas on different cores (`sweep.fuse_layout=auto` on TensorFlow's "
            "CPU). Tracing = first epoch minus the steady epoch. R = 1 is a solo model.",
            "",
            table(["R", "way", "setup s", "tracing s", "steady epoch s", "ms per replica and step"], rows),
        ]
    )


def main(argv=None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--replicas", default="1,2,5,10,20")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--child", choices=WAYS, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.replicas = [int(v) for v in str(args.replicas).split(",")]
    if args.child:
        print(json.dumps(measure_way(args, args.child)))
        return 0
    if args.quick:
        args.replicas, args.epochs, args.dataset = [1, 2], 2, "mnist_sample"
    header = None if args.render_only else Header(NAME, argv, args.quick)
    data = {} if args.render_only else measure(args)
    return finish(args, NAME, TITLE, header, data, render)


if __name__ == "__main__":
    raise SystemExit(main())
