"""Step time of the lecture's model, and the abs_vs_relu study, on each installed Keras backend (issue 38)

    python -m bench.backends [--quick] [--out FILE] [--epochs 8] [--rounds 2]
    python -m bench.backends --sweep [--quick] [--out FILE] [--rounds 1]     # the study: its own section

Each configuration is a real ``python runner.py backend=B training.jit_compile=J``
run (through ``experiments.api.run``, a fresh process each, into a temporary
SQLite store): the lecture's Lambda MLP with ``abs`` on the offline MNIST
sample, batch 1024, no model or plots logged. Epoch time = the run's
``epoch_time_s`` history, median of epochs 2..E (epoch 1 compiles); step time =
epoch time / steps per epoch (from Keras' progress lines). Rounds alternate
the configurations.

``--sweep``: the lecture's study, ``python runner.py +experiment=abs_vs_relu
backend=B`` (2 models x abs, relu x 5 seeds on mnist_sample, the layerlab
launcher with 2 workers), per installed backend as shipped and with
``sweep.fuse_replicates=true``: one whole process each (spawn to exit, CPU
seconds of all its processes), into its own fresh SQLite store, no model or
plots logged; then the study's answer read back with ``experiments.api.runs``:
mean test accuracy of abs and ReLU per model, and whether abs is ahead.
``--quick``: one model, 2 seeds, 400 images, 1 epoch.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import (
    PYTHON,
    QUICK_NOTE,
    ROOT,
    ChildFailed,
    Header,
    finish,
    parser,
    run_timed,
    save_raw,
    say,
    spread,
    table,
)

NAME = "backends"
TITLE = "8. The lecture's model on each Keras backend, XLA on and off (issue 38)"
SWEEP_NAME = "backends_sweep"
SWEEP_TITLE = "8b. The abs_vs_relu study on each Keras backend: is abs better than ReLU everywhere? (issue 38)"
SWEEP_WAYS = ("as shipped", "fused")  # the layerlab launcher, 20 jobs; sweep.fuse_replicates=true, 4 jobs
SWEEP_QUICK = ["model=lambda_mlp", "seed=0,1", "dataset.limit=400", "training.epochs=1"]
ACC = "test_sparse_categorical_accuracy"


def one_run(backend: str, jit: bool, epochs: int, uri: str, quick: bool) -> dict:
    from experiments import api

    overrides = [
        f"backend={backend}",
        f"training.jit_compile={str(jit).lower()}",
        f"training.epochs={epochs}",
        "training.verbose=2",
        "tracking.log_model=false",
        "tracking.log_plots=false",
    ]
    if quick:
        overrides.append("dataset.limit=400")
    run = api.run(overrides, tracking_uri=uri)
    if run.status != "FINISHED":
        raise RuntimeError(f"{backend} jit={jit}: {run.status}\n{run.log[-2000:]}")
    times = run.history(["epoch_time_s"]).sort_values("epoch")["value"].tolist()
    steps = re.findall(r"^(\d+)/\1 - ", run.log, flags=re.M)
    return {
        "epoch_s": statistics.median(times[1:] or times),
        "first_epoch_s": times[0],
        "steps": int(steps[-1]) if steps else None,
        "test_acc": run.metrics.get("test_sparse_categorical_accuracy"),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: 8; quick: 2)")
    p.add_argument("--rounds", type=int, default=None, help="runs per configuration (default: 2; quick: 1)")
    p.add_argument("--sweep", action="store_true", help="the abs_vs_relu study per backend (its own section)")
    args = p.parse_args(argv)
    if args.sweep:
        return sweep_main(args, argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    from experiments.backends import installed_backends

    header = Header(NAME, argv, args.quick)
    epochs, rounds = args.epochs or (2 if args.quick else 8), args.rounds or (1 if args.quick else 2)
    configs = [(b, j) for b in installed_backends() for j in (False, True)]
    results: dict[str, list[dict]] = {f"{b} jit={j}": [] for b, j in configs}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-backends-") as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for r in range(rounds):
            for b, j in configs if r % 2 == 0 else configs[::-1]:
                res = one_run(b, j, epochs, uri, args.quick)
                results[f"{b} jit={j}"].append(res)
                say(
                    f"round {r + 1}: {b} jit_compile={j}: epoch {res['epoch_s'] * 1000:.0f} ms, "
                    f"{res['steps']} steps, first epoch {res['first_epoch_s']:.1f} s"
                )
    return finish(args, NAME, TITLE, header, {"results": results, "epochs": epochs, "quick": args.quick}, render)


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table."""
    med = {k: statistics.median(r["epoch_s"] for r in v) for k, v in d["results"].items()}
    text = "; ".join(f"{k} {v * 1000:.0f} ms" for k, v in med.items())
    return [["8. backends", "epoch time per backend (no target)", text, "n/a"]]


def render(d: dict) -> str:
    base_key = "tensorflow jit=False"
    med = {k: statistics.median(r["epoch_s"] for r in v) for k, v in d["results"].items()}
    rows = []
    for k, v in d["results"].items():
        steps = v[-1]["steps"]
        epoch = med[k]
        rows.append(
            [
                k.replace(" jit=", ", jit_compile="),
                f"{epoch * 1000:.0f}",
                f"{epoch / steps * 1000:.1f}" if steps else "?",
                str(steps or "?"),
                f"{med[k] / med[base_key]:.2f}x" if base_key in med else "n/a",
                f"{statistics.median(r['first_epoch_s'] for r in v):.1f}",
                f"{statistics.median(r['test_acc'] for r in v):.3f}",
                str(len(v)),
            ]
        )
    md = [
        f"`python runner.py backend=B training.jit_compile=J training.epochs={d['epochs']}` (lecture MLP, abs, "
        "mnist_sample, batch 1024), one fresh process per run, configurations alternating; epoch time = median of "
        "the run's `epoch_time_s` over epochs 2..E, then median over rounds; step = epoch / steps.",
        "",
        table(
            [
                "backend, XLA",
                "epoch ms",
                "step ms",
                "steps/epoch",
                "epoch vs TensorFlow without XLA",
                "first epoch s (compiles)",
                "test accuracy",
                "runs",
            ],
            rows,
        ),
    ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


def one_sweep(work: Path, backend: str, way: str, quick: bool) -> dict:
    """One whole ``runner.py +experiment=abs_vs_relu`` command; its time and the study's answer from its runs."""
    import os

    from bench.sweep_vs_shell import make_store

    uri = f"sqlite:///{make_store(work / 'mlflow.db')}"  # migrated here, before the workers start
    cmd = [
        PYTHON,
        str(ROOT / "runner.py"),
        "+experiment=abs_vs_relu",
        f"backend={backend}",
        *(SWEEP_QUICK if quick else []),
        *(["sweep.fuse_replicates=true"] if way == "fused" else []),
        f"tracking.uri={uri}",
        f"tracking.artifact_root={(work / 'mlartifacts').as_uri()}",
        "tracking.log_model=false",
        "tracking.log_plots=false",
        f"hydra.sweep.dir={work / 'multirun'}",
    ]
    load = os.getloadavg()[0]
    wall, proc = run_timed(cmd, cwd=ROOT, timeout=7200)
    answer = study_answer(uri)
    want = 4 if quick else 20
    if answer["runs"] != want or answer["backends"] != [backend]:
        raise ChildFailed(f"{backend} {way}: {answer['runs']} of {want} runs finished on {answer['backends']}")
    return {"wall": wall, "cpu": proc.cpu_s, "load": load, **answer}


def study_answer(uri: str) -> dict:
    """The study's answer from its finished runs: mean test accuracy per model and activation, and the sweep
    comparison's test of the activation within each model."""
    from experiments import api

    runs = api.runs("abs_vs_relu", tracking_uri=uri, status="FINISHED")
    if "model" not in runs.columns:  # --quick sweeps one model
        runs["model"] = "lambda_mlp"
    means = runs.groupby(["model", "model.activation"])[ACC].mean()
    acc = {m: {a: float(means[m, a]) for a in ("abs", "relu")} for m in sorted(runs["model"].unique())}
    tests = api.compare("abs_vs_relu", tracking_uri=uri).tests
    tests = [
        {"within": str(t["within"]), "level_a": str(t["level_a"])}
        | {k: float(t[k]) for k in ("diff", "diff_ci_low", "diff_ci_high", "p_holm")}
        for _, t in tests[tests["factor"] == "model.activation"].iterrows()
    ]
    return {"runs": len(runs), "backends": sorted(set(runs["backend"])), "acc": acc, "tests": tests}


def sweep_main(args, argv: list[str] | None) -> int:
    if args.render_only:
        return finish(args, SWEEP_NAME, SWEEP_TITLE, None, {}, render_sweep)
    from experiments.backends import BACKENDS, installed_backends

    header = Header(NAME, argv, args.quick, with_tf=False)  # the children import TensorFlow
    backends = installed_backends()
    configs = [(b, w) for w in SWEEP_WAYS for b in backends]
    results: dict[str, list[dict]] = {f"{b}, {w}": [] for b, w in configs}
    data = {"results": results, "skipped": [b for b in BACKENDS if b not in backends], "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-backends-sweep-") as tmp:
        k = 0
        for r in range(args.rounds or 1):
            for b, w in configs if r % 2 == 0 else configs[::-1]:
                k += 1
                res = one_sweep(Path(tmp) / f"{k:03d}", b, w, args.quick)
                results[f"{b}, {w}"].append(res)
                save_raw(args.out, SWEEP_NAME, header, data)  # a run stopped later keeps what it measured
                say(f"round {r + 1}: {b}, {w}: {res['wall']:.0f} s, CPU {res['cpu']:.0f} s, accuracy {res['acc']}")
    return finish(args, SWEEP_NAME, SWEEP_TITLE, header, data, render_sweep)


def _test_cell(t: dict) -> str:
    sign = 1 if t["level_a"] == "abs" else -1  # abs minus ReLU whichever level the test put first
    low, high = sorted((sign * t["diff_ci_low"], sign * t["diff_ci_high"]))
    where = f"{t['within']}: " if t["within"] else ""
    return f"{where}{sign * t['diff']:+.4f} ({low:+.4f} to {high:+.4f}), p={t['p_holm']:.2g}"


def render_sweep(d: dict) -> str:
    base = d["results"].get("tensorflow, as shipped")
    base_wall = statistics.median(r["wall"] for r in base) if base else None
    rows = []
    for k, v in d["results"].items():
        if not v:  # a run stopped before this command (then `--render-only`)
            rows.append([k, "not run", *[""] * 8])
            continue
        wall = statistics.median(r["wall"] for r in v)
        diffs, cells = [], []
        for model, acc in v[-1]["acc"].items():
            diff = acc["abs"] - acc["relu"]
            diffs.append(diff)
            cells.append(f"{model}: {acc['abs']:.4f} vs {acc['relu']:.4f}")
        rows.append(
            [
                k,
                spread([r["wall"] for r in v], 0),
                f"{wall / base_wall:.2f}x" if base_wall else "n/a",
                spread([r["cpu"] for r in v], 0),
                " / ".join(f"{r['load']:.2f}" for r in v),
                "; ".join(cells),
                "yes" if all(x > 0 for x in diffs) else "no",
                "; ".join(_test_cell(t) for t in v[-1]["tests"]),
                f"{v[-1]['runs']}",
                str(len(v)),
            ]
        )
    md = [
        "`python runner.py +experiment=abs_vs_relu backend=B` (lambda_mlp and class_mlp x abs, relu x 5 seeds, "
        "20 epochs, mnist_sample, determinism on, `hydra/launcher=layerlab` with 2 workers), as shipped (20 jobs) "
        "and with `sweep.fuse_replicates=true` (**fused**: 4 jobs of 5 seeds, the same 20 runs), plus "
        "`tracking.log_model=false tracking.log_plots=false` (no model files or plots: tracking the study's "
        "numbers, not its artifacts, is what is compared here); each command a whole process (spawn to exit) into "
        "its own fresh SQLite store, backends alternating (median, min-max over the commands). CPU s: user + "
        "system seconds of the command and all its processes. Accuracy: mean test accuracy over the seeds of abs "
        "vs ReLU per model, read "
        "back with `experiments.api.runs`; **abs ahead** when abs's mean is higher for every model; then the "
        "sweep comparison's test of the activation within each model (`experiments.api.compare(...).tests`: "
        "difference of means abs minus ReLU, its 95% CI, Holm-adjusted p). With more than one command per row "
        "the accuracy columns are the last command's (the runs are seeded and deterministic).",
        "",
        table(
            [
                "backend, way",
                "whole command s",
                "median vs tensorflow as shipped",
                "CPU s",
                "load (1 min) before each",
                "mean test accuracy, abs vs ReLU",
                "abs ahead on both models",
                "activation test per model: abs minus ReLU (95% CI), Holm p",
                "runs",
                "commands",
            ],
            rows,
        ),
    ]
    done = {k: v[-1] for k, v in d["results"].items() if v}
    ahead = [k for k, r in done.items() if all(a["abs"] > a["relu"] for a in r["acc"].values())]
    significant = [
        f"{k} ({t['within'] or 'all'}, p={t['p_holm']:.2g})"
        for k, r in done.items()
        for t in r["tests"]
        if t["p_holm"] < 0.05 and (t["diff"] > 0) == (t["level_a"] == "abs")
    ]
    md += [
        "",
        f"**The answer**: abs's mean test accuracy is above ReLU's for every model in {len(ahead)} of {len(done)} "
        f"rows; abs is better at alpha 0.05 (Holm) in: {', '.join(significant) or 'none'}.",
    ]
    if d["skipped"]:
        md += ["", f"Not installed here, so not run: {', '.join(d['skipped'])} (`make install-torch` adds PyTorch)."]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
