"""What does tracking cost?  (GitHub issue 8, question 4)

    python -m bench.tracking_cost [--quick] [--out FILE]

1. ``experiments.compare.compare_sweep`` over 10, 100 and 1,000 job runs
   logged into a temporary SQLite store (2 activations x N/2 seeds, 20 epochs
   of the 5 metrics a job logs, as ``tests/test_compare.py`` does but with the
   client's ``log_batch``), with its loading step (``load_runs``: one
   ``search_runs`` plus one ``get_metric_history`` per run and metric) timed
   on its own, and, for comparison, the same histories fetched with the SQL
   store's ``get_metric_history_bulk`` (one query per metric for 500 runs).
2. MLflow logging per epoch during training: the lecture's MLP on the
   mnist_sample digits, fitted in this process with no logging, with
   layerlab's ``MetricSink`` (journal + background thread, what ``runner.py``
   uses) and with a synchronous ``client.log_batch`` in the epoch-end
   callback, alternating; plus the sink's cost on the training thread per
   call and the time one epoch's ``log_batch`` takes to reach SQLite.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import QUICK_NOTE, Header, finish, median, parser, say, spread, table

NAME = "tracking_cost"
TITLE = "4. Tracking cost: comparing many runs, logging every epoch"
EXPERIMENT = "bench-tracking"
SWEEP = "bench-sweep"
EPOCH_METRICS = ("loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy", "epoch_time_s")


# --------------------------------------------------------------------------
# 1. compare_sweep over many runs
# --------------------------------------------------------------------------


def log_runs(client, exp_id: str, start: int, stop: int, epochs: int) -> None:
    """Log job runs number ``start..stop-1`` (abs for even, relu for odd numbers) of one sweep."""
    from mlflow.entities import Metric, Param

    ts = int(time.time() * 1000)
    for i in range(start, stop):
        act, seed = ("abs", "relu")[i % 2], i // 2
        overrides = [f"model.activation={act}", f"seed={seed}"]
        run = client.create_run(
            exp_id,
            run_name=f"#{i} {act}-seed{seed}",
            tags={
                "layerlab.role": "job",
                "layerlab.sweep_id": SWEEP,
                "layerlab.overrides": json.dumps(overrides),
                "layerlab.job_num": str(i),
            },
        )
        top = 0.90 + (0.03 if act == "abs" else 0.0) + 0.01 * ((seed * 7919) % 10) / 10
        metrics = []
        for e in range(epochs):
            acc = top - 0.4 * 0.6**e
            values = {
                "loss": 1 - acc + 0.01,
                "sparse_categorical_accuracy": acc + 0.01,
                "val_loss": 1 - acc,
                "val_sparse_categorical_accuracy": acc,
                "epoch_time_s": 0.1,
            }
            metrics += [Metric(k, v, ts + e, e) for k, v in values.items()]
        metrics += [
            Metric("test_loss", 1 - acc, ts + epochs, epochs),
            Metric("test_sparse_categorical_accuracy", acc, ts + epochs, epochs),
        ]
        params = [
            Param("seed", str(seed)),
            Param("model.activation", act),
            Param("model.name", "lambda_mlp"),
            Param("optimizer.learning_rate", "0.001"),
        ]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, "FINISHED")


def bulk_histories(client, run_ids: list[str]) -> float:
    """Seconds to fetch the metric histories the comparison reads, with the SQL store's bulk query."""
    from experiments.adapters.mlflow_internals import tracking_store
    from experiments.analysis.runs import history_keys
    from experiments.config.metrics import MetricSpec

    store = tracking_store(client)
    t0 = time.perf_counter()
    got = 0
    for key in history_keys(MetricSpec("sparse_categorical_accuracy")):
        for i in range(0, len(run_ids), 500):
            got += len(store.get_metric_history_bulk(run_ids[i : i + 500], key, max_results=10**7))
    return time.perf_counter() - t0


def compare_costs(tmp: Path, sizes: list[int], epochs: int) -> list[dict]:
    import mlflow

    from experiments.analysis import compare as cmp

    uri = f"sqlite:///{tmp / 'compare.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(tmp / "artifacts").as_uri())
    logged, rows = 0, []
    for n in sizes:
        t0 = time.perf_counter()
        log_runs(client, exp_id, logged, n, epochs)
        log_s = time.perf_counter() - t0
        new = n - logged
        logged = n
        t0 = time.perf_counter()
        df = cmp.load_runs(uri, EXPERIMENT, SWEEP)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # identical synthetic values: scipy warns about precision loss
            warnings.simplefilter("ignore", RuntimeWarning)
            result = cmp.compare_sweep(uri, EXPERIMENT, sweep_id=SWEEP, out_dir=tmp / f"report-{n}")
        compare_s = time.perf_counter() - t0
        assert len(result["runs"]) == n and len(df) == n, (len(result["runs"]), n)
        bulk_s = bulk_histories(client, list(df["run_id"]))
        rows.append({"n": n, "log_s_per_run": log_s / new, "load_s": load_s, "compare_s": compare_s, "bulk_s": bulk_s})
        say(
            f"compare_sweep over {n:>5} runs: {compare_s:.2f} s (load_runs {load_s:.2f} s; bulk histories "
            f"{bulk_s:.2f} s); logging took {log_s / new * 1000:.1f} ms per run"
        )
    return rows


# --------------------------------------------------------------------------
# 2. Logging during training
# --------------------------------------------------------------------------


def logging_costs(tmp: Path, epochs: int, repeats: int, calls: int) -> dict:
    import keras
    import mlflow
    from mlflow.entities import Metric

    from experiments.data import load_dataset, make_tf_dataset
    from experiments.tracking.sink import MetricSink
    from experiments.training.callbacks import EpochLogger, EpochTimer

    data = load_dataset({"name": "mnist_sample"}, 0)
    train = make_tf_dataset(*data.train, 1024, shuffle=True, seed=0)
    val = make_tf_dataset(*data.val, 1024, shuffle=False, seed=0)
    uri = f"sqlite:///{tmp / 'logging.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("bench-logging", artifact_location=(tmp / "artifacts").as_uri())

    from bench.scaling import compose
    from experiments.config.schema import validate
    from experiments.models.builder import build_model
    from experiments.training.compile import compile_model

    cfg = validate(compose([]))  # the default experiment: lecture MLP, Adam 1e-3, sparse CE

    def model():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        m = build_model(cfg.model_spec, input_shapes={"input": data.input_shape})
        compile_model(m, cfg)
        return m

    class Cycle(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begins = []

        def on_epoch_begin(self, epoch, logs=None):
            self.begins.append(time.perf_counter())

    class SyncLogger(keras.callbacks.Callback):
        def __init__(self, run_id):
            super().__init__()
            self.run_id = run_id

        def on_epoch_end(self, epoch, logs=None):
            ts = int(time.time() * 1000)
            client.log_batch(self.run_id, metrics=[Metric(k, float(v), ts, epoch) for k, v in (logs or {}).items()])

    from experiments.training.callbacks import NanGuard, StopOnSignal, make_callbacks
    from experiments.training.checkpoint import Checkpointer

    def fit(mode: str) -> list[float]:
        """Epoch cycles (epochs 2..E-1) of one fit with the given logging / callbacks."""
        cycle, sink = Cycle(), None
        callbacks = [EpochTimer()]
        if not mode.startswith(("none", "NumPy arrays")):
            run_id = client.create_run(exp_id).info.run_id
            if mode == "synchronous log_batch":
                callbacks.append(SyncLogger(run_id))
            else:
                sink = MetricSink(client, run_id, tmp / f"journal-{run_id}.jsonl")
                if mode == "MetricSink":
                    callbacks.append(EpochLogger(sink))
                elif mode.startswith("NanGuard"):
                    callbacks += [NanGuard(), StopOnSignal()]
                elif mode.startswith("the two checkpoint"):
                    callbacks += [
                        c
                        for c in make_callbacks(validate(compose([])), out_dir=tmp / f"out-{run_id}", run_id=run_id)
                        if isinstance(c, (Checkpointer, keras.callbacks.ModelCheckpoint))
                    ]
                else:  # the callbacks runner.py uses: timer, NaN guard, signals, [checkpoints], EpochLogger(sink)
                    ck = "false" if "checkpoints off" in mode else "true"
                    callbacks = make_callbacks(
                        validate(compose([f"training.checkpoint.enabled={ck}"])),
                        out_dir=tmp / f"out-{run_id}",
                        sink=sink,
                        run_id=run_id,
                    )
        m = model()
        if mode.startswith("NumPy arrays"):  # the lecture's way: Keras' own array adapter, shuffled by Keras
            m.fit(
                data.train[0],
                data.train[1],
                batch_size=1024,
                validation_data=data.val,
                epochs=epochs,
                verbose=0,
                callbacks=[cycle, *callbacks],
            )
        else:
            m.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[cycle, *callbacks], shuffle=False)
        if sink is not None:
            sink.close(timeout=60)
        cyc = [b - a for a, b in zip(cycle.begins, cycle.begins[1:])]
        return cyc[1:] or cyc  # epoch 1 traces the graph

    modes = [
        "NumPy arrays, no logging (like bench/plain_keras.py)",
        "none (EpochTimer only)",
        "MetricSink",
        "synchronous log_batch",
        "NanGuard + StopOnSignal (per-batch hooks)",
        "the two checkpoint callbacks (every epoch)",
        "layerlab's callbacks, checkpoints off",
        "layerlab's callbacks with checkpoints (default)",
    ]
    results: dict[str, list[float]] = {m: [] for m in modes}
    order = random.Random(0)
    for r in range(repeats):
        for mode in order.sample(modes, len(modes)):  # a new order each round: no mode always runs last
            results[mode].append(median(fit(mode)))
        say(f"round {r + 1}/{repeats}: " + ", ".join(f"{m} {results[m][-1] * 1000:.1f} ms" for m in modes))

    # The sink's cost on the calling (training) thread, and one epoch's delivery to SQLite.
    run_id = client.create_run(exp_id).info.run_id
    sink = MetricSink(client, run_id, tmp / "journal-micro.jsonl")
    metrics = {k: 0.5 for k in EPOCH_METRICS}
    call = []
    for step in range(calls):
        t0 = time.perf_counter()
        sink(metrics, step)
        call.append(time.perf_counter() - t0)
    sink.close(timeout=120)
    deliver = []
    run_id = client.create_run(exp_id).info.run_id
    for step in range(calls):
        ts = int(time.time() * 1000)
        t0 = time.perf_counter()
        client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()])
        deliver.append(time.perf_counter() - t0)
    return {"cycles": results, "call": call, "deliver": deliver, "epochs": epochs, "repeats": repeats}


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    quick = args.quick
    header = Header(NAME, argv, quick)
    sizes = [4, 10] if quick else [10, 100, 1000]
    hist_epochs = 3 if quick else 20
    with tempfile.TemporaryDirectory(prefix="layerlab-bench-tracking-") as tmp_name:
        tmp = Path(tmp_name)
        comp = compare_costs(tmp, sizes, hist_epochs)
        logc = logging_costs(tmp, epochs=3 if quick else 12, repeats=1 if quick else 5, calls=5 if quick else 50)
    data = {"comp": comp, "hist_epochs": hist_epochs, "logc": logc, "quick": quick}
    return finish(args, NAME, TITLE, header, data, render)


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    comp, cyc = d["comp"], d["logc"]["cycles"]
    last = comp[-1]
    none = median(cyc["none (EpochTimer only)"])
    sink = median(cyc["MetricSink"])
    default = median(cyc["layerlab's callbacks with checkpoints (default)"])
    return [
        [
            "4. tracking",
            f"compare_sweep over {last['n']:,} runs (no target)",
            f"{last['compare_s']:.1f} s; `load_runs` {last['load_s']:.1f} s in a separate call; the histories by "
            f"MLflow's bulk query alone: {last['bulk_s']:.1f} s",
            "n/a",
        ],
        [
            "4. tracking",
            "MLflow logging per epoch (no target)",
            f"MetricSink {(sink - none) * 1000:+.1f} ms/epoch; all of layerlab's callbacks (checkpoints on) "
            f"{(default - none) * 1000:+.1f} ms/epoch over {none * 1000:.0f} ms",
            "n/a",
        ],
    ]


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    return report(d["comp"], d["hist_epochs"], d["logc"], d["quick"])


def report(comp: list[dict], hist_epochs: int, logc: dict, quick: bool) -> str:
    base = comp[0]
    rows = [
        [
            f"{r['n']:,}",
            f"{r['compare_s']:.2f}",
            f"{r['compare_s'] / r['n'] * 1000:.1f}",
            f"{r['compare_s'] / base['compare_s'] * base['n'] / r['n']:.2f}x",
            f"{r['load_s']:.2f}",
            f"{r['load_s'] / r['compare_s'] * 100:.0f}%",
            f"{r['bulk_s']:.2f}",
            f"{r['log_s_per_run'] * 1000:.1f}",
        ]
        for r in comp
    ]
    cyc = logc["cycles"]
    none = median(cyc["none (EpochTimer only)"])
    lrows = [
        [
            mode,
            spread([v * 1000 for v in vals], 1),
            f"{(median(vals) - none) * 1000:+.1f}",
            f"{median(vals) / none:.3f}x",
        ]
        for mode, vals in cyc.items()
    ]
    md = [
        f"**compare_sweep** over N job runs of one sweep (2 groups, {hist_epochs} epochs of 5 metrics each, plus test "
        "metrics), logged into a temporary SQLite store; the whole call (load, statistics, 2 plots, report files) "
        "and its loading step `load_runs` (one `search_runs`, then the histories by one SQL query per 500 runs "
        '(section 4b) timed separately; "bulk" = the same histories with the SQL store\'s '
        "`get_metric_history_bulk` (one query per metric and 500 runs).",
        "",
        table(
            [
                "runs N",
                "compare_sweep s",
                "ms per run",
                "per-run cost vs smallest N",
                "load_runs s",
                "load_runs / compare_sweep (separate calls)",
                "bulk histories s",
                "logging ms per run (create + log_batch + end)",
            ],
            rows,
        ),
        "",
        f"**Logging every epoch** during `fit` (lecture MLP, mnist_sample, {logc['epochs']} epochs, "
        f"{logc['repeats']} round(s), each in a new seeded random order): epoch cycle = one epoch's start to the next "
        f"(training, "
        "validation and every epoch-end callback), median of epochs 2..E-1, then median (min-max) over rounds. "
        "All rows but the first feed `experiments.data.make_tf_dataset` (what `runner.py` trains on); the first "
        "passes the NumPy arrays to `fit` as the lecture (and variant A of the overhead benchmark) does. "
        "The per-batch-hooks and checkpoint rows add only those callbacks of layerlab to the EpochTimer. "
        "The last two rows use `experiments.training.callbacks.make_callbacks`, i.e. what `runner.py` trains with "
        "(EpochTimer, NanGuard, StopOnSignal, the two checkpoint callbacks when enabled, EpochLogger into a "
        "MetricSink):",
        "",
        table(["logging / callbacks", "epoch cycle ms", "added ms per epoch", "vs none"], lrows),
        "",
        f"`MetricSink.__call__` on the training thread (journal line + queue): "
        f"{spread([c * 1e6 for c in logc['call']], 0)} us "
        f"per epoch; one epoch's `client.log_batch` (5 metrics) to SQLite, which the sink's thread does in the "
        f"background: {spread([d * 1000 for d in logc['deliver']], 1)} ms.",
    ]
    if quick:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
