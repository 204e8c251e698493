"""``image_folder`` against ``keras.utils.image_dataset_from_directory``: epoch time, and memory under a cap.

    python -m bench.image_folder [--quick] [--out FILE]

1. Speed: a generated folder of small PNGs (50,000 at 32x32 RGB, 10 class folders), read by each pipeline feeding
   the same model (Flatten -> Dense(64, relu) -> Dense(10), batch 128, so the input pipeline is most of an epoch).
   Each pipeline runs in a fresh process, over all the files, shuffled; the epochs after the first are timed
   (the first traces the graph). Target: layerlab's epoch time at most 1.2x Keras'.
2. Memory: a folder whose decoded size (files x height x width x 3 bytes) exceeds the address-space cap
   (``RLIMIT_AS``) set on the process that trains one epoch on it through ``dataset=image_folder``
   (``load_dataset`` with its check pass, then the streamed fit): it must finish, and its peak RSS is reported.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, ROOT, Header, clean_env, finish, parser, run_script, run_timed, say, table, verdict

NAME = "image_folder"
TITLE = "7. Image folders: streamed image_folder vs keras.utils.image_dataset_from_directory"
TARGET = 1.2


def make_folder(root: Path, n: int, size: int, classes: int = 10) -> Path:
    """``n`` PNGs in ``root/class_k/``: a flat colour per class plus a gradient (small files, like real icons)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 60, size, dtype=np.float32)[None, :, None]
    for k in range(classes):
        (root / f"class_{k}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        k = i % classes
        colour = rng.integers(0, 190, 3).astype(np.float32) * 0.3 + 20 * k
        pixels = np.clip(colour[None, None, :] + ramp, 0, 255).astype(np.uint8)
        pixels = np.broadcast_to(pixels, (size, size, 3))
        Image.fromarray(np.ascontiguousarray(pixels)).save(root / f"class_{k}" / f"{i:06d}.png")
    return root


def child(args) -> int:
    """One measured process: ``--variant keras|layerlab|memory``; writes its report as JSON."""
    if args.cap_gib:
        cap = int(args.cap_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import keras
    import numpy as np

    size = (args.size, args.size)
    keras.utils.set_random_seed(0)
    args.variant = args.child
    if args.variant == "keras":
        ds = keras.utils.image_dataset_from_directory(
            args.folder, image_size=size, batch_size=128, shuffle=True, seed=0, verbose=False
        )
        dtype, n = "float32", sum(1 for _ in Path(args.folder).rglob("*.png"))
    else:
        from experiments.data import load_dataset

        opts = {
            "name": "image_folder",
            "path": args.folder,
            "image_size": list(size),
            "val_fraction": 0.05,
            "test_fraction": 0.05,
        }
        t_load0 = time.perf_counter()
        data = load_dataset(opts, seed=0)
        t_load = time.perf_counter() - t_load0
        if args.variant == "layerlab":  # the same files as Keras reads: every path, not only the train split
            paths = np.concatenate([data.train[0], data.val[0], data.test[0]])
            labels = np.concatenate([data.train[1], data.val[1], data.test[1]])
            ds = data.stream.dataset(paths, labels, 128, shuffle=True, seed=0)
            n = len(paths)
        else:
            ds, n = data.tf_dataset("train", 128, shuffle=True, seed=0), len(data.train[1])
        dtype = "uint8"
    model = keras.Sequential(
        [
            keras.Input((*size, 3), dtype=dtype),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(ds, epochs=args.epochs, verbose=0, callbacks=[Timer()])
    report = {
        "variant": args.variant,
        "n": int(n),
        "epochs": times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.variant != "keras":
        report["load_s"] = t_load
    Path(args.report).write_text(json.dumps(report))
    return 0


def _run_child(variant: str, folder: Path, size: int, epochs: int, tmp: Path, cap_gib: float = 0.0) -> dict:
    report = tmp / f"{variant}.json"
    cmd = [
        PYTHON,
        "-m",
        "bench.image_folder",
        "--child",
        variant,
        "--folder",
        str(folder),
        "--size",
        str(size),
        "--epochs",
        str(epochs),
        "--report",
        str(report),
        "--cap-gib",
        str(cap_gib),
    ]
    wall, _ = run_timed(cmd, cwd=ROOT, env=clean_env(), timeout=3600)
    out = json.loads(report.read_text())
    out["wall_s"] = wall
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--child", choices=("keras", "layerlab", "memory"), help=argparse_hidden())
    p.add_argument("--folder")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--report")
    p.add_argument("--cap-gib", type=float, default=0.0)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    header = None
    data: dict = {}
    if not args.render_only:
        header = Header(NAME, argv, args.quick)
        n, size, epochs = (300, 16, 2) if args.quick else (50_000, 32, 3)
        big_n, big_size, cap = (200, 64, 6.0) if args.quick else (24_000, 256, 4.0)
        with tempfile.TemporaryDirectory(prefix="bench-image-folder-") as tmp_name:
            tmp = Path(tmp_name)
            t0 = time.perf_counter()
            folder = make_folder(tmp / "small", n, size)
            data["make_s"] = time.perf_counter() - t0
            say(f"{n:,} PNGs of {size}x{size} written in {data['make_s']:.0f} s")
            runs = []
            for variant in ("keras", "layerlab", "keras", "layerlab"):  # interleaved: drifting load hits both
                runs.append(_run_child(variant, folder, size, epochs, tmp))
                say(f"{variant}: epochs {[round(t, 2) for t in runs[-1]['epochs']]}")
            big = make_folder(tmp / "big", big_n, big_size)
            memory = _run_child("memory", big, big_size, 1, tmp, cap_gib=cap)
        data.update(
            {
                "n": n,
                "size": size,
                "epochs": epochs,
                "runs": runs,
                "quick": args.quick,
                "big_n": big_n,
                "big_size": big_size,
                "cap_gib": cap,
                "memory": memory,
            }
        )
    return finish(args, NAME, TITLE, header, data, render)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def _epoch_s(runs: list[dict], variant: str) -> float:
    """Median over the processes of a variant of their epochs after the first."""
    import statistics

    per = [statistics.median(r["epochs"][1:] or r["epochs"]) for r in runs if r["variant"] == variant]
    return statistics.median(per)


def summary(d: dict) -> list[list[str]]:
    k, lab = _epoch_s(d["runs"], "keras"), _epoch_s(d["runs"], "layerlab")
    m = d["memory"]
    decoded = d["big_n"] * d["big_size"] ** 2 * 3 / 2**30
    return [
        [
            "7. image folders",
            f"image_folder epoch <= {TARGET}x image_dataset_from_directory ({d['n']:,} PNGs)",
            f"{lab / k:.2f}x ({lab:.2f} s vs {k:.2f} s)",
            verdict(lab / k <= TARGET),
        ],
        [
            "7. image folders",
            f"{decoded:.1f} GiB decoded under a {d['cap_gib']:.0f} GiB address-space cap finishes",
            f"finished; peak RSS {m['peak_rss_mib']:,.0f} MiB",
            verdict(True),
        ],
    ]


def render(d: dict) -> str:
    k, lab = _epoch_s(d["runs"], "keras"), _epoch_s(d["runs"], "layerlab")
    rows = [
        [
            r["variant"],
            r["n"],
            " / ".join(f"{t:.2f}" for t in r["epochs"]),
            f"{r['load_s']:.1f}" if "load_s" in r else "n/a",
            f"{r['peak_rss_mib']:,.0f}",
            f"{r['wall_s']:.1f}",
        ]
        for r in d["runs"]
    ]
    m = d["memory"]
    decoded = d["big_n"] * d["big_size"] ** 2 * 3 / 2**30
    lines = [
        f"Speed: {d['n']:,} PNGs of {d['size']}x{d['size']} RGB in 10 class folders (written in {d['make_s']:.0f} s), "
        f"each pipeline feeding Rescaling -> Flatten -> Dense(64, relu) -> Dense(10), batch 128, {d['epochs']} "
        "epochs per process, shuffled, all files; the processes interleaved (keras, layerlab, keras, layerlab).",
        "",
        table(
            ["pipeline", "images", "epoch s (each)", "load s (digest + decode check)", "peak RSS MiB", "process s"],
            rows,
        ),
        "",
        f"Epoch time after the first epoch (median over processes): layerlab {lab:.2f} s, Keras {k:.2f} s: "
        f"**{lab / k:.2f}x** (target <= {TARGET}x: {verdict(lab / k <= TARGET)}). layerlab's one-off pass before "
        "training (SHA-256 of every file and a PIL decode check) is the `load s` column; Keras only lists the files.",
        "",
        f"Memory: {d['big_n']:,} PNGs of {d['big_size']}x{d['big_size']} RGB = {decoded:.1f} GiB decoded, trained "
        f"one epoch through `dataset=image_folder` under `RLIMIT_AS` = {d['cap_gib']:.0f} GiB (TensorFlow's own "
        f"address space included): finished, epoch {m['epochs'][0]:.1f} s, load {m['load_s']:.1f} s, peak RSS "
        f"{m['peak_rss_mib']:,.0f} MiB.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run_script(main, NAME)
