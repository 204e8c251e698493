"""Does the cost grow linearly with the data?  (GitHub issue 8, question 3)

    python -m bench.scaling [--quick] [--out FILE]

In one process, through layerlab's own Python API (the configs composed by
Hydra exactly as ``runner.py`` composes them, then ``load_dataset``,
``build_model``, ``compile_model``, ``make_tf_dataset`` and ``model.fit``):

* the lecture's Lambda MLP on 5k, 50k and 500k synthetic 28x28 images;
* the lecture's conv net (``conf/model/conv_binary.yaml`` with
  ``model.input.shape=null``) on synthetic RGB images of 64, 128 and 256 px,
  2 classes, binary cross-entropy, batch 32.

Every sample of the generated set is trained on (the splits are put back
together), without validation, so one epoch is exactly N samples. Reported:
seconds per epoch (median of epochs 2..E: epoch 1 traces the graph),
samples/s, microseconds per sample, a least-squares fit ``time = fixed + N x
per-sample`` and the achieved FLOP/s against the machine's measured float32
matmul peak (``tf.linalg.matmul`` of two square matrices, best of several).

Training FLOPs per sample are counted for the Dense and Conv2D layers only
(element-wise ops, pooling and the optimizer are ignored): forward
2 x MACs, weight gradient 2 x MACs, input gradient 2 x MACs except for the
first trainable layer (nothing below it needs a gradient).
"""

from __future__ import annotations

import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import QUICK_NOTE, ROOT, Header, finish, median, parser, say, table, verdict

NAME = "scaling"
TITLE = "3. Scaling: epoch time against data size and image size"


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def matmul_peak(n: int, reps: int) -> float:
    """Best float32 FLOP/s of ``tf.linalg.matmul`` on two n x n matrices."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32, seed=1)
    b = tf.random.normal((n, n), dtype=tf.float32, seed=2)
    tf.linalg.matmul(a, b).numpy()  # warm-up
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def train_flops_per_sample(model) -> float:
    """Forward + backward FLOPs per sample of the Dense and Conv2D layers (see the module doc)."""
    import keras

    total, first = 0.0, True
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            macs = math.prod(layer.kernel.shape)
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape  # (None, h, w, filters)
            macs = math.prod(layer.kernel.shape) * out[1] * out[2]
        else:
            continue
        total += 2 * macs * (2 if first else 3)
        first = False
    return total


def measure(overrides: list[str], batch_size: int, epochs: int) -> dict:
    """Build data + model from the composed config and time ``epochs`` epochs of training on all N samples."""
    import keras
    import numpy as np

    from experiments.config.schema import validate
    from experiments.data import make_tf_dataset
    from experiments.job.prepare import prepare
    from experiments.training.callbacks import EpochTimer
    from experiments.training.compile import compile_model
    from experiments.training.runtime import setup_runtime

    cfg = validate(compose(overrides))
    setup_runtime(cfg)
    t0 = time.perf_counter()
    data, model = prepare(cfg)  # validate registry modules, load_dataset, build_model, check shapes
    gen_s = time.perf_counter() - t0
    x = np.concatenate([data.train[0], data.val[0], data.test[0]])
    y = np.concatenate([data.train[1], data.val[1], data.test[1]])
    compile_model(model, cfg)
    ds = make_tf_dataset(x, y, batch_size, shuffle=True, seed=cfg.seed)
    timer = EpochTimer()

    class Collect(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(float(logs["epoch_time_s"]))

    collect = Collect()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[timer, collect], shuffle=False)
    steady = collect.times[1:] if len(collect.times) > 1 else collect.times
    epoch_s = median(steady)
    n = len(y)
    flops = train_flops_per_sample(model)
    result = {
        "n": n,
        "shape": tuple(data.input_shape),
        "epoch_s": epoch_s,
        "epochs": collect.times,
        "samples_s": n / epoch_s,
        "us_per_sample": epoch_s / n * 1e6,
        "flops_per_sample": flops,
        "flops_s": flops * n / epoch_s,
        "params": model.count_params(),
        "gen_s": gen_s,
        "data_mb": x.nbytes / 2**20,
    }
    del model, ds, data, x, y
    keras.backend.clear_session()
    return result


def linear_fit(ns: list[int], ts: list[float]) -> tuple[float, float]:
    """``t = a + b n`` fitted to relative errors (weights 1/t^2): (a seconds, b seconds per sample).

    Relative, so that the largest size does not decide the line alone.
    """
    w = [1 / t**2 for t in ts]
    sw = sum(w)
    swn = sum(wi * n for wi, n in zip(w, ns))
    swt = sum(wi * t for wi, t in zip(w, ts))
    swnn = sum(wi * n * n for wi, n in zip(w, ns))
    swnt = sum(wi * n * t for wi, n, t in zip(w, ns, ts))
    det = sw * swnn - swn**2
    if not det:
        return math.nan, math.nan
    b = (sw * swnt - swn * swt) / det
    return (swt - b * swn) / sw, b


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    quick = args.quick
    header = Header(NAME, argv, quick)
    import tensorflow as tf

    mm_n, mm_reps = (512, 3) if quick else (2048, 10)
    peak = matmul_peak(mm_n, mm_reps)
    say(f"matmul peak ({mm_n}x{mm_n} float32, best of {mm_reps}): {peak / 1e9:.1f} GFLOP/s")

    # (samples, epochs); the epoch counts keep each size at a few seconds of training at least.
    mlp_sizes = [(2_000, 2), (4_000, 2)] if quick else [(5_000, 10), (50_000, 6), (500_000, 4)]
    conv_sizes = [16, 32] if quick else [64, 128, 256]
    conv_n, conv_epochs = (64, 2) if quick else (512, 3)

    mlp = []
    for n, epochs in mlp_sizes:
        r = measure(
            ["dataset=synthetic", f"dataset.num_samples={n}", "dataset.shape=[28,28]", "model=lambda_mlp"],
            batch_size=1024,
            epochs=epochs,
        )
        mlp.append(r)
        say(
            f"lambda_mlp  N={n:>7}: {r['epoch_s']:.3f} s/epoch, {r['samples_s']:,.0f} samples/s, "
            f"{r['flops_s'] / 1e9:.2f} GFLOP/s (data generated in {r['gen_s']:.1f} s)"
        )
    conv = []
    for s in conv_sizes:
        r = measure(
            [
                "dataset=synthetic",
                f"dataset.num_samples={conv_n}",
                f"dataset.shape=[{s},{s},3]",
                "dataset.num_classes=2",
                "model=conv_binary",
                "model.input.shape=null",
                "training.loss=binary_crossentropy",
                "training.metrics=[accuracy]",
                "training.batch_size=32",
            ],
            batch_size=32,
            epochs=conv_epochs,
        )
        conv.append(r)
        say(
            f"conv_binary {s}x{s}x3 N={conv_n}: {r['epoch_s']:.3f} s/epoch, {r['samples_s']:,.1f} samples/s, "
            f"{r['flops_s'] / 1e9:.2f} GFLOP/s"
        )

    threads = tf.config.threading.get_intra_op_parallelism_threads() or f"default ({os.cpu_count()} cores)"
    data = {
        "peak": peak,
        "mm_n": mm_n,
        "mm_reps": mm_reps,
        "mlp": mlp,
        "conv": conv,
        "conv_n": conv_n,
        "threads": threads,
        "quick": quick,
    }
    return finish(args, NAME, TITLE, header, data, render)


# "At most linear" for the summary: the per-sample cost at the largest N is at most this factor of the
# smallest N's (a lower per-sample cost at large N is the fixed per-epoch cost being amortised).
LINEAR_TOLERANCE = 1.25


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    mlp, conv = d["mlp"], d["conv"]
    ratio = mlp[-1]["us_per_sample"] / mlp[0]["us_per_sample"]
    linear = ratio <= LINEAR_TOLERANCE
    px = (conv[-1]["shape"][0] * conv[-1]["shape"][1]) / (conv[0]["shape"][0] * conv[0]["shape"][1])
    return [
        [
            "3. scaling",
            f"MLP epoch time grows at most linearly with N (us/sample at {mlp[-1]['n']:,} <= "
            f"{LINEAR_TOLERANCE}x that at {mlp[0]['n']:,})",
            " -> ".join(f"{r['us_per_sample']:.2f}" for r in mlp) + f" us/sample ({ratio:.2f}x)",
            verdict(linear),
        ],
        [
            "3. scaling",
            "conv net: epoch time vs pixels (no target)",
            f"{px:.0f}x pixels -> {conv[-1]['epoch_s'] / conv[0]['epoch_s']:.2f}x time; "
            f"{conv[0]['flops_s'] / d['peak'] * 100:.0f}% -> {conv[-1]['flops_s'] / d['peak'] * 100:.0f}% of matmul "
            f"peak",
            "n/a",
        ],
    ]


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    return report(d["peak"], d["mm_n"], d["mm_reps"], d["mlp"], d["conv"], d["conv_n"], d["threads"], d["quick"])


def report(peak, mm_n, mm_reps, mlp, conv, conv_n, threads, quick) -> str:
    base = mlp[0]["us_per_sample"]
    mlp_rows = [
        [
            f"{r['n']:,}",
            f"{r['data_mb']:.0f}",
            len(r["epochs"]),
            f"{r['epoch_s']:.3f}",
            f"{min(r['epochs'][1:] or r['epochs']):.3f}",
            f"{r['samples_s']:,.0f}",
            f"{r['us_per_sample']:.2f}",
            f"{r['us_per_sample'] / base:.2f}x",
            f"{r['flops_s'] / 1e9:.2f}",
            f"{r['flops_s'] / peak * 100:.1f}%",
        ]
        for r in mlp
    ]
    a, b = linear_fit([r["n"] for r in mlp], [r["epoch_s"] for r in mlp])
    worst = max(abs(r["epoch_s"] - (a + b * r["n"])) / r["epoch_s"] for r in mlp)
    base_px = conv[0]["shape"][0] * conv[0]["shape"][1]
    conv_rows = [
        [
            f"{r['shape'][0]}x{r['shape'][1]}x{r['shape'][2]}",
            f"{r['params']:,}",
            f"{r['flops_per_sample'] / 1e6:.1f}",
            f"{r['epoch_s']:.3f}",
            f"{min(r['epochs'][1:] or r['epochs']):.3f}",
            f"{r['samples_s']:,.1f}",
            f"{(r['shape'][0] * r['shape'][1]) / base_px:.0f}x",
            f"{r['epoch_s'] / conv[0]['epoch_s']:.2f}x",
            f"{r['flops_s'] / 1e9:.2f}",
            f"{r['flops_s'] / peak * 100:.1f}%",
        ]
        for r in conv
    ]
    md = [
        f"Machine matmul peak: **{peak / 1e9:.1f} GFLOP/s** (float32 `tf.linalg.matmul` {mm_n}x{mm_n}, best of "
        f"{mm_reps}); TensorFlow intra-op threads: {threads}. Epoch = one pass over all N samples (no validation), "
        "median of epochs 2..E (the `epochs` column is E; the fastest of them is shown too: on a shared machine it "
        "is the least disturbed). FLOPs: Dense and Conv2D layers only, forward + backward "
        "(see `bench/scaling.py`).",
        "",
        f"**Lambda MLP** (lecture section 4, {mlp[0]['params']:,} params, "
        f"{mlp[0]['flops_per_sample'] / 1e6:.2f} MFLOP per training sample), batch 1024, synthetic 28x28 uint8:",
        "",
        table(
            [
                "samples N",
                "data MiB",
                "epochs",
                "s/epoch",
                "fastest epoch s",
                "samples/s",
                "us/sample",
                "us/sample vs smallest",
                "GFLOP/s",
                "of matmul peak",
            ],
            mlp_rows,
        ),
        "",
        f"Line fitted to the relative errors: epoch time = {a:.3f} s + N x {b * 1e6:.2f} us (largest deviation from "
        f"the line: "
        f"{worst * 100:.0f}% of a measured point). Per-sample cost at the largest size is "
        f"{mlp[-1]['us_per_sample'] / mlp[-2]['us_per_sample']:.2f}x that of the next smaller size "
        "(1.00x = perfectly linear).",
        "",
        f"**Conv net** (lecture section 3.2, `conv_binary` with `model.input.shape=null`), {conv_n} synthetic RGB "
        "images, 2 classes, binary cross-entropy, batch 32:",
        "",
        table(
            [
                "image",
                "params",
                "MFLOP/sample",
                "s/epoch",
                "fastest epoch s",
                "samples/s",
                "pixels vs smallest",
                "time vs smallest",
                "GFLOP/s",
                "of matmul peak",
            ],
            conv_rows,
        ),
    ]
    if quick:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
