"""Step time of the lecture's model on each installed Keras backend, XLA on and off (issue 38)

    python -m bench.backends [--quick] [--out FILE] [--epochs 8] [--rounds 2]

Each configuration is a real ``python runner.py backend=B training.jit_compile=J``
run (through ``experiments.api.run``, a fresh process each, into a temporary
SQLite store): the lecture's Lambda MLP with ``abs`` on the offline MNIST
sample, batch 1024, no model or plots logged. Epoch time = the run's
``epoch_time_s`` history, median of epochs 2..E (epoch 1 compiles); step time =
epoch time / steps per epoch (from Keras' progress lines). Rounds alternate
the configurations.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import QUICK_NOTE, Header, finish, parser, say, table

NAME = "backends"
TITLE = "7. The lecture's model on each Keras backend, XLA on and off (issue 38)"


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
    args = p.parse_args(argv)
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
    return [["7. backends", "epoch time per backend (no target)", text, "n/a"]]


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


if __name__ == "__main__":
    sys.exit(main())
