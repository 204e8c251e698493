"""Where one solo training step goes: the section-4 step against its own matrix products, measured in one call.

    python -m bench.step_profile [--quick] [--rounds 5] [--dataset mnist]

The lecture's section-4 model (784-128-10 MLP with Lambda layers, batch 1024,
Adam) is built from the YAML config as ``runner.py`` builds it. Every round
times, one after another (rounds interleaved, medians reported):

* ``matmuls``: the step's two large matrix products alone (forward
  ``x @ W1`` and weight gradient ``x^T @ dh``, 1024x784x128 each), in one
  ``tf.function`` run back to back in a graph loop: the floor;
* ``graph step``: the full train step (forward, loss, gradients, Adam,
  metrics) of the compiled model on one resident batch, looped inside one
  graph: what the step costs without any input pipeline or Python;
* ``pipeline before`` / ``now``: only iterating the training dataset, as
  ``make_tf_dataset`` made it before issue 37 (a ``Dataset.shuffle`` buffer
  of single indices) and as it does now (one permutation per epoch);
* ``fit, as before``: ``model.fit`` one epoch on the old dataset with the
  job's callbacks (timer, NaN guard, stop on signal) and ``steps_per_execution=1``:
  the step as layerlab ran it before issue 37;
* ``fit before, no callbacks``: the same without callbacks;
* ``graph step, gathered``: the same step looped in one graph, each batch
  gathered from the resident arrays by a seeded permutation: what the
  step costs with its own input;
* ``fit, tf.data iterator``: Keras' ``model.fit`` pulling every batch of
  ``make_tf_dataset`` from its ``tf.data`` iterator (``steps_per_execution``
  from the YAML, the job's callbacks): layerlab before the resident path;
* ``fit, layerlab now``: :func:`experiments.training.loop.fit` (what
  ``runner.py`` runs) on ``make_tf_dataset``, compiled by ``compile_model``
  (``training.steps_per_execution`` from the YAML), with the job's callbacks:
  the batches gathered inside the train graph
  (:mod:`experiments.training.resident`);
* ``layerlab now, steps_per_execution=8`` / ``=128`` / ``jit_compile=true``:
  the same fit with another ``training.steps_per_execution`` or with XLA;
* ``+ validation, tf.data iterators`` / ``+ validation, layerlab now``: the
  last two with the validation split (as every run validates each epoch),
  its time counted per training step;
* ``layerlab, steady epoch``: one fit of several epochs with validation and
  the job's callbacks in this process, the median of epochs 2.. (the first
  traces) of each epoch's time (and the process CPU time of the same
  interval) divided by the steps per epoch;
* ``runner.py, steady epoch``: how the issue measures a solo step: a whole
  ``python runner.py dataset=... training.epochs=6`` run (its own process,
  tracked into a temporary store, as a researcher runs it), the median of
  its ``epoch_time_s`` over epochs 2.. divided by the steps per epoch (no
  CPU time: another process).

Per-step times are an epoch's training time divided by its steps (no
validation in these fits), wall clock; ``CPU ms`` is the process's CPU time
per step (all threads), which the machine's other load changes less.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import ROOT, Header, finish, median, parser, say, table

NAME = "step_profile"
TITLE = "Step profile: a solo training step against its matrix products"


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def cpu_flags() -> dict:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        text = ""
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
            break
    return {f: f in flags for f in ("avx512f", "avx512_bf16", "amx_bf16")}


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _timed_loop(fn, reps: int) -> tuple[float, float]:
    """Seconds per iteration of a graph function that itself loops ``reps`` times."""
    wall, cpu = _timed(lambda: fn(reps).numpy())
    return wall / reps, cpu / reps


def _iterate(ds) -> tuple[float, float]:
    def run():
        for _ in ds:
            pass

    return _timed(run)


def _dataset_before(x, y, batch_size: int, seed: int):
    """``experiments.data.make_tf_dataset`` as it was before issue 37: a shuffle buffer of single indices."""
    import tensorflow as tf

    x_t, y_t = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda i: (tf.gather(x_t, i), tf.gather(y_t, i)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def measure(args) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from experiments.adapters.keras_internals import build_training_state
    from experiments.config.schema import validate
    from experiments.data import make_tf_dataset
    from experiments.job.prepare import prepare
    from experiments.training.callbacks import EpochTimer, NanGuard, StopOnSignal
    from experiments.training.compile import compile_model
    from experiments.training.loop import fit
    from experiments.training.runtime import setup_runtime

    overrides = [
        f"dataset={args.dataset}",
        "model=lambda_mlp",
        "training.deterministic=false",
        "training.verbose=0",
        f"training.batch_size={args.batch_size}",
        "training.epochs=1",
        "tracking.uri=null",
    ]
    cfg = validate(compose(overrides))
    setup_runtime(cfg)
    data, _ = prepare(cfg)
    x, y = data.train
    xv, yv = data.val
    if args.quick:
        x, y = x[: 4 * args.batch_size], y[: 4 * args.batch_size]
        xv, yv = xv[: 2 * args.batch_size], yv[: 2 * args.batch_size]
    bs = args.batch_size
    steps = -(-len(x) // bs)

    def fresh(job):
        keras.utils.set_random_seed(0)
        _, m = prepare(job)
        compile_model(m, job)
        return m

    # -- the floor: the step's two large matrix products, looped in one graph
    rng = np.random.default_rng(0)
    xb = tf.constant(rng.random((bs, 784), dtype=np.float32))
    w1 = tf.constant(rng.random((784, 128), dtype=np.float32))
    dh = tf.constant(rng.random((bs, 128), dtype=np.float32))

    @tf.function
    def matmuls(n):
        def body(i, acc):
            h = tf.matmul(xb, w1 + acc)  # forward
            g = tf.matmul(xb, dh + h[:1, :1], transpose_a=True)  # weight gradient
            return i + 1, acc + 1e-9 * g

        return tf.while_loop(lambda i, a: i < n, body, (tf.constant(0), tf.zeros_like(w1)))[1]

    # -- the model's full train step on one resident batch, looped in one graph
    graph_model = fresh(cfg)
    xr, yr = tf.constant(x[:bs]), tf.constant(y[:bs])
    build_training_state(graph_model, make_tf_dataset(x, y, bs, shuffle=True, seed=0).element_spec)  # as fit does

    @tf.function
    def graph_steps(n):
        def body(i):
            graph_model.train_step((xr, yr))
            return (i + 1,)

        return tf.while_loop(lambda i: i < n, body, (tf.constant(0),))[0]

    # -- the same step, each batch gathered in the graph from the resident arrays by a seeded permutation
    gather_model = fresh(cfg)
    build_training_state(gather_model, make_tf_dataset(x, y, bs, shuffle=True, seed=0).element_spec)
    x_all, y_all = tf.constant(x), tf.constant(y)
    n_all = len(x)

    @tf.function
    def gathered_steps(n):
        seed = tf.stack([tf.constant(0, tf.int64), tf.cast(n, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(n_all, dtype=tf.int64), seed=seed)

        def body(i):
            idx = order[i * bs : (i + 1) * bs]
            gather_model.train_step((tf.gather(x_all, idx), tf.gather(y_all, idx)))
            return (i + 1,)

        return tf.while_loop(lambda i: i < n, body, (tf.constant(0),))[0]

    def run_matmuls():
        return _timed_loop(matmuls, steps)

    def run_graph():
        return _timed_loop(graph_steps, steps)

    def run_gathered():
        return _timed_loop(gathered_steps, steps)

    def per_step(times):
        return tuple(t / steps for t in times)

    def run_pipeline_before():
        return per_step(_iterate(_dataset_before(x, y, bs, seed=0)))

    def run_pipeline_now():
        return per_step(_iterate(make_tf_dataset(x, y, bs, shuffle=True, seed=0)))

    def fit_epoch(m, ds, callbacks):
        return per_step(_timed(lambda: m.fit(ds, epochs=1, verbose=0, callbacks=callbacks, shuffle=False)))

    before_cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, steps_per_execution=1))
    models = {
        "before": fresh(before_cfg),
        "nocb": fresh(before_cfg),
        "tfdata": fresh(cfg),
        "now": fresh(cfg),
        "val tfdata": fresh(cfg),
        "val now": fresh(cfg),
    }
    for k in ("tfdata", "val tfdata"):
        build_training_state(models[k], make_tf_dataset(x, y, bs, shuffle=True, seed=0).element_spec)

    def run_before():
        return fit_epoch(
            models["before"], _dataset_before(x, y, bs, seed=0), [EpochTimer(), NanGuard(), StopOnSignal()]
        )

    def run_nocb():
        return fit_epoch(models["nocb"], _dataset_before(x, y, bs, seed=0), [])

    def run_tfdata():
        return fit_epoch(
            models["tfdata"],
            make_tf_dataset(x, y, bs, shuffle=True, seed=0),
            [EpochTimer(), NanGuard(), StopOnSignal()],
        )

    def run_now():
        ds = {"train": make_tf_dataset(x, y, bs, shuffle=True, seed=0), "val": None}
        callbacks = [EpochTimer(), NanGuard(), StopOnSignal()]
        return per_step(_timed(lambda: fit(models["now"], cfg.training, ds, callbacks)))

    def option(**changes):
        job = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, **changes))
        m = fresh(job)

        def run():
            ds = {"train": make_tf_dataset(x, y, bs, shuffle=True, seed=0), "val": None}
            return per_step(_timed(lambda: fit(m, job.training, ds, [EpochTimer(), NanGuard(), StopOnSignal()])))

        return run

    def run_val_tfdata():
        m = models["val tfdata"]
        ds, val = make_tf_dataset(x, y, bs, shuffle=True, seed=0), make_tf_dataset(xv, yv, bs, shuffle=False, seed=0)
        return per_step(
            _timed(
                lambda: m.fit(
                    ds,
                    validation_data=val,
                    epochs=1,
                    verbose=0,
                    shuffle=False,
                    callbacks=[EpochTimer(), NanGuard(), StopOnSignal()],
                )
            )
        )

    def run_val_now():
        ds = {
            "train": make_tf_dataset(x, y, bs, shuffle=True, seed=0),
            "val": make_tf_dataset(xv, yv, bs, shuffle=False, seed=0),
        }
        return per_step(
            _timed(lambda: fit(models["val now"], cfg.training, ds, [EpochTimer(), NanGuard(), StopOnSignal()]))
        )

    class EpochClock(keras.callbacks.Callback):
        """Wall and process CPU seconds of each epoch, from its begin to its end (validation included)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((time.perf_counter() - self.t0[0], time.process_time() - self.t0[1]))

    steady_cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=2 if args.quick else 6))

    def run_steady():
        m = fresh(steady_cfg)
        clock = EpochClock()
        clock.epochs = []
        ds = {
            "train": make_tf_dataset(x, y, bs, shuffle=True, seed=0),
            "val": make_tf_dataset(xv, yv, bs, shuffle=False, seed=0),
        }
        fit(m, steady_cfg.training, ds, [clock, EpochTimer(), NanGuard(), StopOnSignal()])
        later = clock.epochs[1:]
        return median([w for w, _ in later]) / steps, median([c for _, c in later]) / steps

    store = tempfile.mkdtemp(prefix="layerlab-bench-step-")

    def run_runner():
        from experiments import api

        run = api.run(
            [
                f"dataset={args.dataset}",
                "model=lambda_mlp",
                f"training.batch_size={bs}",
                "training.epochs=6",
                "tracking.log_model=false",
                "tracking.log_plots=false",
            ],
            tracking_uri=f"sqlite:///{store}/mlflow.db",
        )
        if run.status != "FINISHED":
            raise RuntimeError(f"runner.py run {run.status}:\n{run.log[-2000:]}")
        times = run.history(["epoch_time_s"]).sort_values("epoch")["value"].tolist()
        return median(times[1:]) / steps, float("nan")

    variants = {
        "matmuls": run_matmuls,
        "graph step": run_graph,
        "graph step, gathered": run_gathered,
        "pipeline before": run_pipeline_before,
        "pipeline now": run_pipeline_now,
        "fit, as before": run_before,
        "fit before, no callbacks": run_nocb,
        "fit, tf.data iterator": run_tfdata,
        "fit, layerlab now": run_now,
        "layerlab now, steps_per_execution=8": option(steps_per_execution=8),
        "layerlab now, steps_per_execution=128": option(steps_per_execution=128),
        "layerlab now, jit_compile=true": option(jit_compile=True),
        "+ validation, tf.data iterators": run_val_tfdata,
        "+ validation, layerlab now": run_val_now,
        "layerlab, steady epoch": run_steady,
    }
    if not args.quick:  # a whole run of full MNIST: minutes, not the quick tier's seconds
        variants["runner.py, steady epoch"] = run_runner
    for fn in variants.values():  # warm-up: traces, oneDNN primitives, thread pools
        fn()
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for r in range(args.rounds):
        for k, fn in variants.items():
            wall, used = fn()
            times[k].append(wall)
            cpu[k].append(used)
        say(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {times[k][-1] * 1e3:.2f} ms" for k in variants))
    return {
        "steps": steps,
        "batch_size": bs,
        "samples": len(x),
        "val_samples": len(xv),
        "dataset": args.dataset,
        "steps_per_execution": cfg.training.steps_per_execution,
        "times_ms": {k: [t * 1e3 for t in v] for k, v in times.items()},
        "cpu_ms": {k: [t * 1e3 for t in v] for k, v in cpu.items()},
        "flags": cpu_flags(),
    }


def render(data: dict) -> str:
    t = {k: median(v) for k, v in data["times_ms"].items()}
    c = {k: median(v) for k, v in data.get("cpu_ms", {}).items()}
    mm = t["matmuls"]
    rows = [
        (
            k,
            f"{v:.2f}",
            f"{v / mm:.2f}x",
            f"{c[k]:.2f}" if k in c and not math.isnan(c[k]) else "-",
            f"{c[k] / c['matmuls']:.2f}x" if k in c and not math.isnan(c[k]) else "-",
            " / ".join(f"{x:.2f}" for x in data["times_ms"][k]),
        )
        for k, v in t.items()
    ]
    flags = data["flags"]
    lines = [
        f"Section-4 model (784-128-10 MLP, Lambda layers, Adam), batch {data['batch_size']}, "
        f"{data['samples']} training samples of `dataset={data['dataset']}` ({data['steps']} steps per epoch, "
        f"{data.get('val_samples', '?')} validation samples); "
        f"medians of {len(next(iter(data['times_ms'].values())))} interleaved rounds. CPU flags: "
        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items())
        + ".",
        "",
        table(("per step", "median ms", "vs matmuls", "CPU ms", "CPU vs matmuls", "rounds (ms)"), rows),
        "",
        "Target (issue 37): a solo step at most 1.5x its matrix products: "
        + (
            f"a steady epoch of a `runner.py` run (validation included, as the issue measures it) "
            f"{t['runner.py, steady epoch'] / mm:.2f}x, "
            if t.get("runner.py, steady epoch")
            else ""
        )
        + (
            f"a steady epoch of layerlab's fit in this process "
            f"{t['layerlab, steady epoch'] / mm:.2f}x (CPU {c['layerlab, steady epoch'] / c['matmuls']:.2f}x), "
            if "layerlab, steady epoch" in t
            else ""
        )
        + f"a one-epoch fit of layerlab now {t['fit, layerlab now'] / mm:.2f}x "
        f"(CPU {c['fit, layerlab now'] / c['matmuls']:.2f}x)"
        + (
            f", with the tf.data iterator {t['fit, tf.data iterator'] / mm:.2f}x"
            if "fit, tf.data iterator" in t
            else ""
        )
        + f", before issue 37 {t['fit, as before'] / mm:.2f}x."
        if c
        else f"Target (issue 37): a solo step at most 1.5x its matrix products: layerlab now "
        f"{t['fit, layerlab now'] / mm:.2f}x, before {t['fit, as before'] / mm:.2f}x.",
    ]
    options = [k for k in t if k.startswith("layerlab now, ")]
    if options and "+ validation, layerlab now" in t:
        now = t["fit, layerlab now"]
        lines += [
            "",
            "Read: `fit, layerlab now` against `fit, tf.data iterator` is what gathering the batches inside "
            f"the train graph saves ({now / t['fit, tf.data iterator']:.2f} of its wall time, "
            f"{c['fit, layerlab now'] / c['fit, tf.data iterator']:.2f} of its CPU time; with validation "
            f"{t['+ validation, layerlab now'] / t['+ validation, tf.data iterators']:.2f} and "
            f"{c['+ validation, layerlab now'] / c['+ validation, tf.data iterators']:.2f}). What remains "
            "above `graph step, gathered` is Keras' `fit` per call and per epoch (callbacks, logs, the "
            "epoch's order); what remains above `matmuls` in `graph step` is the rest of the step "
            "(rescale, activation, bias, softmax, loss, Adam, metrics). The defaults stay "
            "`training.steps_per_execution=32` and `training.jit_compile=false` unless an option row is "
            "faster than `fit, layerlab now` here: "
            + ", ".join(
                f"{k.split(', ', 1)[1]} {t[k] / now:.2f}x wall, {c[k] / c['fit, layerlab now']:.2f}x CPU"
                for k in options
            )
            + ".",
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dataset", default="mnist", help="mnist (full, fetched once) or mnist_sample (offline)")
    p.add_argument("--batch-size", type=int, default=1024)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.dataset = 2, "mnist_sample"
    header = None if args.render_only else Header(NAME, argv, args.quick)
    data = {} if args.render_only else measure(args)
    return finish(args, NAME, TITLE, header, data, render)


if __name__ == "__main__":
    raise SystemExit(main())
