"""Does a registered layer work on every Keras backend?  ``python -m experiments.check_layer NAME [NAME ...]``

For each installed backend (TensorFlow, JAX, PyTorch), in a fresh process
with ``KERAS_BACKEND`` set (Keras picks its backend once, at import): build a
small model around the layer, train it one step, save it as ``.keras``, load
it back and compare its predictions; then load the models the *other*
backends saved and compare their predictions too (a model saved on one
backend must load on another with equal predictions, within float
tolerance).  The report names, per layer, the first backend where a stage
fails and the error; the exit status is 1 when any layer failed.

A layer written with ``keras.ops`` passes everywhere; one that calls
``tf.*`` inside ``call`` passes on TensorFlow and fails on JAX, which is what
this command is for.  User layers come from ``--module`` (as
``registry.modules`` in the config).

The model: ``Input(input_shape) -> layer(**kwargs) -> Flatten -> Dense(3,
softmax)``, 16 random samples, Adam, one step.  The default input shape
``(32,)`` matches the default width of the lecture's dense layers;
``--input-shape 28,28`` and ``--kwargs '{"units": 8}'`` change them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.backends import installed_backends
from experiments.process import configure_process

TOLERANCE = 1e-5  # float32 predictions of one model on two backends (different kernels, same weights)
SAMPLES = 16


def _error(exc: BaseException) -> str:
    """The exception's type and message (Keras' "Exception encountered when calling ..." wrapper removed)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.split("Arguments received by")[0].splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith("Exception encountered when calling")]
    return f"{type(exc).__name__}: {(meaningful or lines or [''])[0][:300]}"


def _hint(cls, backend: str) -> str:
    """Why a layer that works on TensorFlow may fail elsewhere: its module imports TensorFlow."""
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    if (
        backend != "tensorflow"
        and module is not None
        and any(getattr(v, "__name__", "") == "tensorflow" for v in vars(module).values())
    ):
        return (
            f"; its module {module.__name__} imports TensorFlow: a tf.* op in a layer runs on the TensorFlow "
            "backend only, write it with keras.ops"
        )
    return ""


def _check_one(name: str, backend: str, folder: Path, input_shape: tuple, kwargs: dict, make: bool) -> dict:
    """In this process (Keras on ``backend``): the stages for one layer; the first failure ends them."""
    import keras
    import numpy as np

    import layers

    stage, cls = "look up", None
    try:
        cls = layers.layer_registry.get(name)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(SAMPLES, *input_shape)).astype("float32")
        y = rng.integers(0, 3, size=(SAMPLES,))
        ours = folder / f"{name}.{backend}.keras"
        if make:
            stage = "build"
            keras.utils.set_random_seed(0)
            inputs = keras.Input(shape=input_shape)
            hidden = keras.layers.Flatten()(cls(**kwargs)(inputs))
            model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            stage = "train one step"
            model.fit(x, y, batch_size=SAMPLES, epochs=1, verbose=0)
            stage = "predict"
            expected = np.asarray(model.predict(x, verbose=0))
            stage = "save .keras"
            model.save(ours)
            np.save(folder / f"{name}.{backend}.npy", expected)
            stage = "load .keras on the same backend"
            again = np.asarray(keras.saving.load_model(ours).predict(x, verbose=0))
            if not np.allclose(again, expected, atol=TOLERANCE):
                raise AssertionError(f"predictions differ after the round trip (max {abs(again - expected).max():.2e})")
        loaded = []
        for other in sorted(folder.glob(f"{name}.*.keras")):
            source = other.name[len(name) + 1 : -len(".keras")]
            if source == backend:
                continue
            stage = f"load the model saved on {source}"
            got = np.asarray(keras.saving.load_model(other).predict(x, verbose=0))
            want = np.load(folder / f"{name}.{source}.npy")
            if not np.allclose(got, want, atol=TOLERANCE):
                raise AssertionError(f"predictions differ from {source}'s (max {abs(got - want).max():.2e})")
            loaded.append(source)
        return {"ok": True, "loaded_from": loaded}
    except Exception as exc:
        return {"ok": False, "stage": stage, "error": _error(exc) + _hint(cls, backend)}


def _worker(args: argparse.Namespace) -> int:
    """One backend's process: every layer's stages, the results as JSON on the last line of stdout."""
    import layers

    layers.load_modules(list(args.module))
    shape = tuple(int(d) for d in args.input_shape.split(","))
    kwargs = json.loads(args.kwargs)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    results = {
        name: _check_one(name, backend, Path(args.dir), shape, kwargs, make=not args.load_only) for name in args.names
    }
    print(json.dumps(results), flush=True)
    return 0


def _run_backend(backend: str, args: argparse.Namespace, folder: Path, load_only: bool) -> dict[str, Any]:
    """The worker for ``backend`` in a fresh process; its results per layer (a crash counts for every layer)."""
    cmd = [
        sys.executable,
        "-m",
        "experiments.check_layer",
        "--worker",
        "--dir",
        str(folder),
        "--input-shape",
        args.input_shape,
        "--kwargs",
        args.kwargs,
        *args.names,
    ]
    cmd += [a for m in args.module for a in ("--module", m)] + (["--load-only"] if load_only else [])
    env = dict(os.environ, KERAS_BACKEND=backend)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {
            name: {"ok": False, "stage": "start", "error": f"the {backend} process failed: {tail}"}
            for name in args.names
        }


def check(args: argparse.Namespace) -> tuple[str, bool]:
    """Every backend in order, then the first one again to load what the later ones saved.

    Returns:
        The report and whether every layer passed on every backend.
    """
    backends = [b for b in (args.backends.split(",") if args.backends else installed_backends())]
    results: dict[str, dict[str, dict]] = {name: {} for name in args.names}
    with tempfile.TemporaryDirectory(prefix="layerlab-check-layer-") as tmp:
        folder = Path(tmp)
        for backend in backends:
            for name, result in _run_backend(backend, args, folder, load_only=False).items():
                results[name][backend] = result
        if len(backends) > 1 and all(r.get("ok") for r in (results[n][backends[0]] for n in args.names)):
            for name, result in _run_backend(backends[0], args, folder, load_only=True).items():
                if not result["ok"]:
                    results[name][backends[0]] = result
                else:
                    results[name][backends[0]]["loaded_from"] = result["loaded_from"]
    lines, all_ok = [], True
    for name, per_backend in results.items():
        failed = [(b, r) for b, r in per_backend.items() if not r["ok"]]
        if failed:
            all_ok = False
            backend, r = failed[0]
            passed = [b for b, r2 in per_backend.items() if r2["ok"]]
            lines.append(
                f"{name}: FAILS on {backend} at '{r['stage']}': {r['error']}"
                + (f" (works on {', '.join(passed)})" if passed else "")
            )
            lines += [f"  also fails on {b} at '{r2['stage']}': {r2['error']}" for b, r2 in failed[1:]]
        else:
            trips = "; ".join(
                f"{b} loads {', '.join(r['loaded_from'])}'s model" for b, r in per_backend.items() if r["loaded_from"]
            )
            lines.append(
                f"{name}: OK on {', '.join(per_backend)} (build, one training step, .keras round trip"
                + (f"; {trips} with equal predictions" if trips else "")
                + ")"
            )
    return "\n".join(lines), all_ok


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.check_layer", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+", help="registered layer names (python runner.py list_layers=true)")
    p.add_argument("--module", action="append", default=[], help="a module registering layers (repeatable)")
    p.add_argument("--backends", default=None, help="comma-separated (default: every installed backend)")
    p.add_argument("--input-shape", default="32", help="the model's input shape without the batch, e.g. 28,28")
    p.add_argument("--kwargs", default="{}", help="the layer's arguments as JSON, e.g. '{\"units\": 8}'")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry (``layerlab check-layer`` calls this). 0: every layer passed everywhere; 1: not."""
    args = _parser().parse_args(argv)
    if args.worker:
        return _worker(args)
    report, ok = check(args)
    print(report, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    configure_process()
    sys.exit(main())
