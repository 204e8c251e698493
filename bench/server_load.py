"""How fast does the team server take metrics when several jobs log at once?  (GitHub issue 15, part 4)

    python -m bench.server_load [--quick] [--writers 1,4,8] [--batches 200] [--runs 4] [--out FILE]

Starts the team stack of ``scripts/mlflow_stack.sh`` (PostgreSQL + ``mlflow server`` with its default
2 uvicorn workers, on free loopback ports, in a temporary state folder; stopped at the end), then, for
each writer count, starts that many writer processes at once (multiprocessing, spawned). Each writer
creates its own runs, sends two untimed warm-up batches (after one untimed warm-up round of 2 writers
that nobody reports), waits for the others at a barrier, then sends a
fixed number of ``MlflowClient.log_batch`` calls over HTTP: one batch is one epoch of one run (the 6
metrics a job logs per epoch, the next step each time, cycling over its runs). Every call is timed on
the client (request to response, so it includes the server's write to PostgreSQL). For reference, 100
``get_experiment`` calls (nothing written) from one process give the floor of one REST call.

Reported per writer count: median and p95 latency of one ``log_batch``, the batches per second of all
writers together (over the window from the first timed call to the last), and both as ratios to the
1-writer figures of the same run. The writers, the server and PostgreSQL share this machine's cores.

PostgreSQL (Debian's ``postgresql`` package) and psycopg2 are needed; without them the script stops with
a message that says what to install.
"""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing as mp
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import QUICK_NOTE, ROOT, Header, clean_env, finish, fmt, parser, say, table

NAME = "server_load"
TITLE = "5. Server load: log_batch latency with concurrent writers"
SCRIPT = ROOT / "scripts" / "mlflow_stack.sh"
EXPERIMENT = "bench-server-load"
EPOCH_METRICS = (
    "loss",
    "sparse_categorical_accuracy",
    "val_loss",
    "val_sparse_categorical_accuracy",
    "epoch_time_s",
    "learning_rate",
)


class StackUnavailable(RuntimeError):
    pass


# --------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stack(cmd: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def stack_env(services: Path) -> dict:
    """The script's environment: private state folder, free ports, this interpreter's virtualenv if the
    checkout has none of its own."""
    env = clean_env(
        LAYERLAB_SERVICES_DIR=str(services),
        LAYERLAB_PG_PORT=str(_free_port()),
        LAYERLAB_MLFLOW_PORT=str(_free_port()),
        LAYERLAB_PG_PASSWORD=secrets.token_hex(12),
    )
    for key in ("LAYERLAB_PG_BIN", "LAYERLAB_VENV"):  # where PostgreSQL and mlflow are, if the user said so
        if os.environ.get(key):
            env[key] = os.environ[key]
    if "LAYERLAB_VENV" not in env and not (ROOT / ".venv").exists() and sys.prefix != sys.base_prefix:
        env["LAYERLAB_VENV"] = sys.prefix
    return env


def start_stack(env: dict) -> str:
    """Start PostgreSQL and the MLflow server; return the tracking URI or raise :class:`StackUnavailable`."""
    started = _stack("start", env)
    if started.returncode != 0:
        lines = (started.stderr.strip() or started.stdout.strip() or "(no message)").splitlines()
        why = " ".join(line.strip() for line in lines if "error" in line or "missing" in line) or lines[-1]
        raise StackUnavailable(
            f"bench.server_load: cannot start the PostgreSQL + MLflow stack (`scripts/mlflow_stack.sh start` "
            f"exited {started.returncode}: {why}). This benchmark measures a real team server and needs "
            "PostgreSQL (Debian's `postgresql` package: `apt-get install postgresql` as root, which the script "
            "does itself when run as root; elsewhere set LAYERLAB_PG_BIN to the folder of initdb/pg_ctl/psql) "
            f"and psycopg2 in the virtualenv {env.get('LAYERLAB_VENV', ROOT / '.venv')} "
            "(`pip install -e '.[postgres]'`). Nothing was measured."
        )
    return _stack("uri", env).stdout.strip()


def stop_stack(env: dict) -> None:
    stopped = _stack("stop", env, timeout=180)
    if stopped.returncode != 0:
        say(f"warning: `scripts/mlflow_stack.sh stop` exited {stopped.returncode}:\n{stopped.stderr[-2000:]}")


# --------------------------------------------------------------------------
# The writers
# --------------------------------------------------------------------------


def _batch(step: int, start_ms: int):
    from mlflow.entities import Metric

    ts = start_ms + step
    return [Metric(key, 1.0 / (step + 1 + i), ts, step) for i, key in enumerate(EPOCH_METRICS)]


def writer(uri: str, exp_id: str, index: int, runs: int, batches: int, barrier, results) -> None:
    """One writer process: its own runs, warm-up, barrier, then ``batches`` timed ``log_batch`` calls."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run_ids = [client.create_run(exp_id, run_name=f"writer{index}-run{r}").info.run_id for r in range(runs)]
    start_ms = int(time.time() * 1000)
    client.log_batch(run_ids[0], metrics=_batch(0, start_ms))  # warm-up: connection pool, first rows
    client.log_batch(run_ids[0], metrics=_batch(1, start_ms))
    barrier.wait()
    lat = []
    t0 = time.monotonic()  # CLOCK_MONOTONIC: comparable between processes on one machine
    for i in range(batches):
        run_id, step = run_ids[i % runs], 2 + i // runs
        t = time.perf_counter()
        client.log_batch(run_id, metrics=_batch(step, start_ms))
        lat.append((time.perf_counter() - t) * 1000)
    t1 = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a "View run" link per run
        for run_id in run_ids:
            client.set_terminated(run_id)
    results.put({"index": index, "lat_ms": lat, "t0": t0, "t1": t1})


def measure(uri: str, exp_id: str, writers: int, runs: int, batches: int) -> dict:
    """Start ``writers`` writer processes at once; their latencies and the common window."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(uri, exp_id, i, runs, batches, barrier, results)) for i in range(writers)]
    for p in procs:
        p.start()
    got = []
    deadline = time.monotonic() + 900
    while len(got) < writers:
        if time.monotonic() > deadline:
            break
        try:
            got.append(results.get(timeout=5))
        except Exception:  # queue.Empty: check that the writers are still alive
            if not any(p.is_alive() for p in procs) and results.empty():
                break
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    if len(got) < writers:
        codes = [p.exitcode for p in procs]
        raise RuntimeError(f"{writers} writers: only {len(got)} reported (exit codes {codes})")
    window = max(r["t1"] for r in got) - min(r["t0"] for r in got)
    return {
        "writers": writers,
        "batches": writers * batches,
        "window_s": window,
        "lat_ms": [x for r in sorted(got, key=lambda r: r["index"]) for x in r["lat_ms"]],
    }


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    vals = sorted(v for v in values if math.isfinite(v))
    if not vals:
        return math.nan
    return vals[max(0, math.ceil(q / 100 * len(vals)) - 1)]


def stats(r: dict) -> dict:
    return {
        "median": percentile(r["lat_ms"], 50),
        "p95": percentile(r["lat_ms"], 95),
        "max": max(r["lat_ms"]),
        "per_s": r["batches"] / r["window_s"] if r["window_s"] > 0 else math.nan,
    }


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    rows = d["results"]
    base, top = stats(rows[0]), stats(rows[-1])
    return [
        [
            "5. server load",
            f"log_batch latency, {rows[-1]['writers']} concurrent writers (no target)",
            f"median {top['median']:.1f} ms, p95 {top['p95']:.1f} ms ({top['median'] / base['median']:.2f}x / "
            f"{top['p95'] / base['p95']:.2f}x the 1-writer {base['median']:.1f} / {base['p95']:.1f} ms); "
            f"{top['per_s']:.0f} batches/s",
            "n/a",
        ]
    ]


def render(d: dict) -> str:
    rows = d["results"]
    base = stats(rows[0])
    body = []
    for r in rows:
        s = stats(r)
        body.append(
            [
                r["writers"],
                r["batches"],
                fmt(s["median"], 1),
                fmt(s["p95"], 1),
                fmt(s["max"], 1),
                fmt(s["per_s"], 0),
                f"{s['median'] / base['median']:.2f}x",
                f"{s['p95'] / base['p95']:.2f}x",
                f"{s['per_s'] / base['per_s']:.2f}x",
            ]
        )
    md = [
        f"`MlflowClient.log_batch` over HTTP to the team stack (`scripts/mlflow_stack.sh`: PostgreSQL backend, "
        f"`mlflow server` with 2 uvicorn workers, both on this machine). One batch = one epoch of one run "
        f"({len(EPOCH_METRICS)} metrics); each writer process logs {d['batches']} batches over its own "
        f"{d['runs']} runs after 2 untimed warm-up batches, all writers released at once (after an untimed warm-up "
        f"round of 2 writers). Latency is client-side "
        "(request to response: includes the server's write to PostgreSQL). Ratios are against the 1-writer row "
        "of this run.",
        "",
        table(
            [
                "writers",
                "batches",
                "median ms",
                "p95 ms",
                "max ms",
                "batches/s (all writers)",
                "median vs 1",
                "p95 vs 1",
                "batches/s vs 1",
            ],
            body,
        ),
        "",
        f"For reference, a call that writes nothing (`get_experiment`, {len(d['read_ms'])} calls from one "
        f"process, no other writer) takes median {percentile(d['read_ms'], 50):.1f} ms, p95 "
        f"{percentile(d['read_ms'], 95):.1f} ms. The writers, the server's workers and PostgreSQL all run on "
        f"this machine's {d['cores']} cores (load average in the header).",
    ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument(
        "--writers", default=None, help="comma-separated writer counts, 1 first (default 1,4,8; --quick 1,2)"
    )
    p.add_argument(
        "--batches", type=int, default=None, help="timed log_batch calls per writer (default 200, --quick 4)"
    )
    p.add_argument("--runs", type=int, default=4, help="runs per writer (default 4)")
    args = p.parse_args(argv)
    if args.render_only:
        return finish(args, NAME, TITLE, None, {}, render)
    counts = [int(x) for x in (args.writers or ("1,2" if args.quick else "1,4,8")).split(",")]
    if counts[0] != 1:
        p.error("--writers must start with 1 (the baseline of the ratios)")
    batches = args.batches or (4 if args.quick else 200)
    header = Header(NAME, argv, args.quick, with_tf=False)
    services = Path(tempfile.mkdtemp(prefix="layerlab-bench-svc-", dir="/tmp"))  # traversable by `postgres`
    env = stack_env(services)
    try:
        t0 = time.perf_counter()
        uri = start_stack(env)
        say(f"stack up at {uri} in {time.perf_counter() - t0:.1f} s")
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        exp_id = client.create_experiment(EXPERIMENT)
        warm = measure(uri, exp_id, 2, 2, 10)  # untimed: both uvicorn workers and PostgreSQL warmed up first
        say(f"warm-up: {warm['batches']} batches from 2 writers (not reported)")
        read_ms = []  # the floor of one REST call that writes nothing, from this process alone
        for _ in range(10 if args.quick else 100):
            t = time.perf_counter()
            client.get_experiment(exp_id)
            read_ms.append((time.perf_counter() - t) * 1000)
        say(f"get_experiment (reads only): median {percentile(read_ms, 50):.1f} ms")
        results = []
        for n in counts:
            r = measure(uri, exp_id, n, args.runs, batches)
            s = stats(r)
            say(
                f"{n} writer(s): {r['batches']} batches in {r['window_s']:.1f} s; median {s['median']:.1f} ms, "
                f"p95 {s['p95']:.1f} ms, {s['per_s']:.0f} batches/s"
            )
            results.append(r)
    finally:
        stop_stack(env)
        shutil.rmtree(services, ignore_errors=True)
    data = {
        "results": results,
        "read_ms": read_ms,
        "batches": batches,
        "runs": args.runs,
        "cores": os.cpu_count(),
        "quick": args.quick,
    }
    return finish(args, NAME, TITLE, header, data, render)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StackUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
