"""Reading a sweep's runs from MLflow at scale: one call per run and metric vs bulk queries (issue 38)

    python -m bench.load_runs [--quick] [--out FILE] [--sizes 1000 10000] [--old-up-to 10000]
    python -m bench.load_runs --server 1000 10000 [--old-up-to 1000]   # the PostgreSQL-backed server, section 4c

N synthetic job runs of one sweep (2 activations x N/2 seeds, 20 epochs of the
5 per-epoch metrics a job logs plus 2 test metrics, logged with the client's
``log_batch`` as ``bench.tracking_cost`` does; a size that is a multiple of the
one before is made of SQL copies of the runs so far, new run ids, see
:func:`copy_runs`) in a temporary SQLite store.
Timed, alternating, in this process:

* old: ``mlflow.search_runs`` plus one ``MlflowClient.get_metric_history``
  per run and history metric (what ``load_runs`` did before issue 38);
* new: ``experiments.analysis.runs.load_runs`` (the same search, then the
  histories by one SQL query per 500 runs: ``experiments.adapters.mlflow_store``);
* the search alone (both paths share it), ``experiments.api.runs`` (the tidy
  table) and ``experiments.api.histories`` (long format).

``--server``: the same runs on ``scripts/mlflow_stack.sh``'s server instead
(the first size logged over HTTP, larger multiples copied inside PostgreSQL),
read over HTTP and with the database URI; see :func:`measure_server`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import QUICK_NOTE, Header, finish, parser, save_raw, say, table
from bench.tracking_cost import EXPERIMENT, SWEEP, log_runs

NAME = "load_runs"
TITLE = "4b. Loading 1,000 and 10,000 runs: per-run calls vs bulk queries (issue 38)"
SERVER_NAME = "load_runs_server"
SERVER_TITLE = "4c. Loading runs from the PostgreSQL-backed team server: per-run calls vs bulk (issue 38)"
EPOCHS = 20


def old_load(uri: str) -> int:
    """The pre-issue-38 loading: the search, then one ``get_metric_history`` per run and history metric."""
    from mlflow import MlflowClient

    from experiments.adapters.mlflow_store import per_run_metric_points
    from experiments.analysis.metric import resolve_metric
    from experiments.analysis.runs import history_dicts, history_keys, search_job_runs

    _, df = search_job_runs(uri, EXPERIMENT, SWEEP)
    keys = history_keys(resolve_metric(df, None, None))
    points = per_run_metric_points(MlflowClient(tracking_uri=uri), df["run_id"].tolist(), keys)
    points = points.sort_values(["run_id", "key", "step"], kind="stable").reset_index(drop=True)
    df["history"] = history_dicts(points, df["run_id"].tolist())
    return len(df)


RUN_TABLES = ("runs", "metrics", "latest_metrics", "params", "tags")  # MLflow's tables keyed by run_uuid
# A new run id per row, as MLflow's own: 32 lower-case hex digits (uuid4().hex).
NEW_RUN_ID = {
    "sqlite": "lower(hex(randomblob(16)))",
    "postgresql": "replace(CAST(gen_random_uuid() AS TEXT), '-', '')",
}


def copy_runs(db_uri: str, copies: int) -> None:
    """Append ``copies`` SQL copies of every run in the store (new run ids; same params, tags, metrics).

    ``db_uri``: the store's SQLAlchemy URI (``sqlite:///...`` or ``postgresql+psycopg2://...``, the database
    behind a tracking server). Logging 10,000 runs through the client would take most of the benchmark's time
    (far more over HTTP: section 4c states how long its first runs took); the reading this benchmark measures
    does not care how the rows were written. A copy's ``artifact_uri`` names
    its own id; PostgreSQL's planner statistics are refreshed afterwards (``ANALYZE``), as its autovacuum
    would soon do on a server.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(db_uri)
    try:
        with engine.begin() as con:
            q = con.dialect.identifier_preparer.quote
            columns = {t: [c["name"] for c in sa.inspect(con).get_columns(t)] for t in RUN_TABLES}
            con.execute(sa.text("CREATE TEMP TABLE originals AS SELECT run_uuid AS old FROM runs"))
            for _ in range(copies):
                con.execute(sa.text("DROP TABLE IF EXISTS idmap"))
                new_id = NEW_RUN_ID[engine.dialect.name]
                con.execute(sa.text(f"CREATE TEMP TABLE idmap AS SELECT old, {new_id} AS new FROM originals"))
                for table, cols in columns.items():
                    select = ", ".join(
                        "idmap.new"
                        if c == "run_uuid"
                        else "replace(t.artifact_uri, t.run_uuid, idmap.new)"
                        if (table, c) == ("runs", "artifact_uri")
                        else f"t.{q(c)}"
                        for c in cols
                    )
                    con.execute(
                        sa.text(
                            f"INSERT INTO {table} ({', '.join(map(q, cols))}) SELECT {select} FROM {table} t "
                            "JOIN idmap ON t.run_uuid = idmap.old"
                        )
                    )
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as con:
                con.execute(sa.text(f"ANALYZE {', '.join(RUN_TABLES)}"))
    finally:
        engine.dispose()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed_rounds(rows: list[dict], row: dict, reads: dict, repeats: int, old, checkpoint) -> None:
    """``repeats`` rounds of every read of ``reads`` (seconds into ``row[key]``), then ``old()`` when given (into
    ``row["old"]``; it must return the number of runs, ``row["n"]``). The slow old path comes last in each round:
    a run stopped during it still has the bulk figures. ``checkpoint(rows, running)`` around every timing."""
    n = row["n"]
    for _ in range(repeats):
        for key, read in reads.items():
            checkpoint(rows, f"{key} at {n:,} runs")
            row[key].append(timed(read))
        if old is not None:
            checkpoint(rows, f"old at {n:,} runs")
            t0 = time.perf_counter()
            assert old() == n
            row["old"].append(time.perf_counter() - t0)
        checkpoint(rows, None)


def measure(tmp: Path, sizes: list[int], repeats: int, old_up_to: int, checkpoint=None) -> list[dict]:
    """Time the reads at each size; ``checkpoint(rows, running)`` is called before and after every timing
    (``running`` names the one under way, None when done), so a run stopped part-way keeps what it measured."""
    import mlflow

    from experiments import api
    from experiments.analysis.runs import load_runs, search_job_runs

    checkpoint = checkpoint or (lambda rows, running: None)
    uri = f"sqlite:///{tmp / 'runs.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(tmp / "artifacts").as_uri())
    logged, rows = 0, []
    reads = {
        "new": lambda: load_runs(uri, EXPERIMENT, SWEEP),
        "search": lambda: search_job_runs(uri, EXPERIMENT, SWEEP),
        "api_runs": lambda: api.runs(EXPERIMENT, SWEEP, uri),
        "api_histories": lambda: api.histories(EXPERIMENT, SWEEP, uri),
    }
    for n in sizes:
        t0 = time.perf_counter()
        if logged and n % logged == 0:  # 10,000 = the first 1,000 and 9 SQL copies of them
            copy_runs(uri, n // logged - 1)
            say(f"copied {n - logged} runs in SQL in {time.perf_counter() - t0:.0f} s")
        else:
            log_runs(client, exp_id, logged, n, EPOCHS)
            say(f"logged {n - logged} runs in {time.perf_counter() - t0:.0f} s")
        logged = n
        assert len(load_runs(uri, EXPERIMENT, SWEEP)) == n  # warm: the store's first read, imports
        row = {"n": n, "old": [], "new": [], "search": [], "api_runs": [], "api_histories": []}
        rows.append(row)
        timed_rounds(
            rows, row, reads, repeats, old=(lambda: old_load(uri)) if n <= old_up_to else None, checkpoint=checkpoint
        )
        say(f"{n:>6} runs: " + ", ".join(f"{k} {min(v):.2f} s" for k, v in row.items() if k != "n" and v))
    return rows


def measure_server(tmp: Path, sizes: list[int], repeats: int, old_up_to: int, checkpoint=None) -> list[dict]:
    """The same reads against the team stack (scripts/mlflow_stack.sh: PostgreSQL behind ``mlflow server``).

    The first size is logged over HTTP; a size that is a multiple of the one before is reached by SQL copies
    inside PostgreSQL (:func:`copy_runs`), any other by logging the rest over HTTP. Per size: new over HTTP
    (get-history-bulk, 100 runs per call), new straight from PostgreSQL (the SQL path, for a user who has the
    database URI) and, up to ``old_up_to`` runs, old (per-run calls over HTTP); ``checkpoint`` as in
    :func:`measure`."""
    import shutil

    import mlflow

    from bench.server_load import stack_env, start_stack, stop_stack
    from experiments.analysis.runs import load_runs

    checkpoint = checkpoint or (lambda rows, running: None)
    services = Path(tempfile.mkdtemp(prefix="layerlab-bench-svc-", dir="/tmp"))  # traversable by `postgres`
    env = stack_env(services)
    uri = start_stack(env)
    try:
        db = f"postgresql+psycopg2://mlflow:{env['LAYERLAB_PG_PASSWORD']}@127.0.0.1:{env['LAYERLAB_PG_PORT']}/mlflow"
        client = mlflow.MlflowClient(tracking_uri=uri)
        exp_id = client.create_experiment(EXPERIMENT)
        logged, rows = 0, []
        reads = {"new": lambda: load_runs(uri, EXPERIMENT, SWEEP), "sql": lambda: load_runs(db, EXPERIMENT, SWEEP)}
        for n in sizes:
            t0 = time.perf_counter()
            if logged and n % logged == 0:
                copy_runs(db, n // logged - 1)
                how = f"copied in PostgreSQL: {n - logged:,} runs"
            else:
                log_runs(client, exp_id, logged, n, EPOCHS)
                how = f"logged over HTTP: {n - logged:,} runs"
            row = {"n": n, "how": how, "write_s": time.perf_counter() - t0, "old": [], "new": [], "sql": []}
            say(f"{how} in {row['write_s']:.0f} s")
            logged = n
            rows.append(row)
            checkpoint(rows, f"the first reads of {n:,} runs")
            for read in reads.values():  # warm, and both paths see every run with its whole history
                cells = read()["history"]
                assert len(cells) == n and all(len(c.get("val_loss", ())) == EPOCHS for c in cells), n
            old = (lambda: old_load(uri)) if n <= old_up_to else None
            timed_rounds(rows, row, reads, repeats, old=old, checkpoint=checkpoint)
            say(f"server, {n} runs: " + ", ".join(f"{k} {min(row[k]):.2f} s" for k in reads if row[k]))
        return rows
    finally:
        stop_stack(env)
        shutil.rmtree(services, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="numbers of runs (default: 1000 10000)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per size (default: 3; quick: 1)")
    p.add_argument(
        "--server",
        type=int,
        nargs="*",
        default=None,
        metavar="N",
        help="instead: these numbers of runs on the PostgreSQL-backed server of scripts/mlflow_stack.sh, its own "
        "section (no N: 1000 10000)",
    )
    p.add_argument(
        "--old-up-to",
        type=int,
        default=None,
        help="time the old per-run path only up to this many runs (default: 10000; with --server 1000)",
    )
    args = p.parse_args(argv)
    server = args.server is not None  # its own section
    name, title, render_fn = (SERVER_NAME, SERVER_TITLE, render_server) if server else (NAME, TITLE, render)
    if args.render_only:
        return finish(args, name, title, None, {}, render_fn)
    header = Header(NAME, argv, args.quick, with_tf=False)
    default_sizes = [20, 60] if args.quick else [1000, 10000]
    sizes = (args.server if server else args.sizes) or default_sizes
    repeats = args.repeats or (1 if args.quick else 3)
    old_up_to = args.old_up_to if args.old_up_to is not None else (sizes[0] if server else 10000)

    def data(rows: list[dict], running: str | None = None) -> dict:
        return {"rows": rows, "quick": args.quick, "epochs": EPOCHS, "old_up_to": old_up_to, "running": running}

    def checkpoint(rows: list[dict], running: str | None) -> None:
        save_raw(args.out, name, header, data(rows, running))

    with tempfile.TemporaryDirectory(prefix="layerlab-bench-load-runs-") as tmp_name:
        rows = (measure_server if server else measure)(Path(tmp_name), sizes, repeats, old_up_to, checkpoint)
    return finish(args, name, title, header, data(rows), render_fn)


def summary(d: dict) -> list[list[str]]:
    """Rows of the summary table: question, target, measured, verdict."""
    last = d["rows"][-1]
    old = f"{min(last['old']):.1f} s one call per run and metric, " if last["old"] else ""
    return [
        [
            "4b. loading runs",
            f"load_runs over {last['n']:,} runs (no target)",
            f"{old}{_best(last['new'])} s by bulk query; api.runs {_best(last['api_runs'])} s",
            "n/a",
        ]
    ]


def _best(values: list[float]) -> str:
    return f"{min(values):.2f}" if values else "not timed"


def render(d: dict) -> str:
    """The section's markdown from the saved raw results."""
    rows = [
        [
            f"{r['n']:,}",
            _best(r["old"]),
            _best(r["new"]),
            f"{min(r['old']) / min(r['new']):.1f}x" if r["old"] else "n/a",
            _best(r["search"]),
            _best(r["api_runs"]),
            _best(r["api_histories"]),
            str(len(r["new"])),
        ]
        for r in d["rows"]
    ]
    md = [
        f"N job runs of one sweep (2 groups, {d['epochs']} epochs of 5 metrics plus 2 test metrics) in a temporary "
        "SQLite store (a size that is a multiple of the one before: the runs logged so far plus SQL copies of them "
        "under new run ids, so the same overrides and seeds repeat); best of the rounds, seconds, in one process. "
        "**old**: `mlflow.search_runs` plus one "
        "`get_metric_history` per run and history metric (the loading before issue 38); **new**: `load_runs` "
        "today (the same search, then one SQL query per 500 runs on MLflow's `metrics` table); **search**: "
        "`mlflow.search_runs` alone, which both share; `api.runs` (the tidy table) and `api.histories` "
        "(long format) of `experiments.api`.",
        "",
        table(
            [
                "runs N",
                "old load_runs s",
                "new load_runs s",
                "old / new",
                "search alone s",
                "api.runs s",
                "api.histories s",
                "rounds",
            ],
            rows,
        ),
    ]
    if d.get("running"):  # saved by the checkpoint of a run stopped part-way (then `--render-only`)
        md += [
            "",
            f"**Incomplete**: the run was stopped while timing {d['running']}; that figure and any after "
            'it are missing ("not timed"), not estimated.',
        ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


def render_server(d: dict) -> str:
    """The server section's markdown."""
    rows, bound = d["rows"], d["old_up_to"]
    first = rows[0]
    md = [
        "`scripts/mlflow_stack.sh` (PostgreSQL behind `mlflow server`, both on this machine, private ports); N job "
        f"runs of one sweep (2 groups, {d['epochs']} epochs of 5 metrics plus 2 test metrics). The first "
        f"{first['n']:,} were logged over HTTP with the client's `log_batch` ({first['write_s']:.0f} s); a larger "
        "N that is a multiple of the one before was reached by SQL copies of those runs inside PostgreSQL "
        "(`bench.load_runs.copy_runs`: every row of MLflow's `runs`, `params`, `tags`, `metrics` and "
        "`latest_metrics` again under a new 32-hex-digit run id from `gen_random_uuid()`, then `ANALYZE`); "
        "before the timings, both new paths had to return all N runs, each with its whole history. Best of the "
        "rounds, seconds. **old**: "
        "`search_runs` plus one `get_metric_history` per run and history metric, over HTTP; **new over HTTP**: "
        "`load_runs` with the server's URI (the histories by the server's `get-history-bulk`, 100 runs per call "
        "and metric); **new with the database URI**: `load_runs` with the PostgreSQL URI (one SQL query per 500 "
        "runs).",
        "",
        table(
            [
                "runs N",
                "how the runs got there",
                "old over HTTP s",
                "new over HTTP s",
                "old / new",
                "new with the database URI s",
                "rounds",
            ],
            [
                [
                    f"{r['n']:,}",
                    f"{r['how']} ({r['write_s']:.0f} s)",
                    _best(r["old"]) if r["n"] <= bound else "not run",
                    _best(r["new"]),
                    f"{min(r['old']) / min(r['new']):.1f}x" if r["old"] and r["new"] else "n/a",
                    _best(r["sql"]),
                    str(len(r["new"])),
                ]
                for r in rows
            ],
        ),
    ]
    if any(r["n"] > bound for r in rows):
        took = [f"{min(r['old']):.0f} s at {r['n']:,} runs" for r in rows if r["old"]]
        md += [
            "",
            f"The old path was not run above {bound:,} runs (`--old-up-to`): it makes one HTTP call per run and "
            "history metric (5 per run here), "
            + (f"it already took {', '.join(took)}, " if took else "")
            + "and on SQLite (section 4b) it grew faster than the number of runs.",
        ]
    if d.get("running"):
        md += [
            "",
            f"**Incomplete**: the run was stopped while timing {d['running']}; that figure and any after "
            'it are missing ("not timed"), not estimated.',
        ]
    if d["quick"]:
        md += ["", QUICK_NOTE]
    return "\n".join(md)


if __name__ == "__main__":
    sys.exit(main())
