"""Run every benchmark, one after the other, each in its own process (``make bench``).

    python -m bench.run_all [--quick] [--out FILE] [--only NAME ...]

Each script rewrites its own section of the output file (default
``BENCHMARKS.md``). A failing script is reported and the others still run;
the exit status is 1 if any failed. At the end the ``summary`` section (the
targets of GitHub issue 8 and whether they are met) is rewritten from the raw
results the scripts saved (``bench/results/*.json``), so it always matches
the sections below it. ``--summary-only`` rewrites just that.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    DEFAULT_OUT,
    EXTRA_RUNS,
    PYTHON,
    ROOT,
    SCRIPTS,
    clean_env,
    markers,
    raw_path,
    table,
    write_section,
)


def _previous_summary(out: str) -> tuple[list[list[str]], list[str]]:
    """The table rows and "Runs summarised here" lines of the summary section ``out`` has now."""
    path = Path(out)
    if not path.exists():
        return [], []
    start, end = markers("summary")
    text = path.read_text()
    if start not in text or end not in text:
        return [], []
    lines = text[text.index(start) : text.index(end)].splitlines()
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in lines
        if line.startswith("|") and not line.startswith("|--")
    ]
    return rows[1:], [line for line in lines if line.startswith("- `bench.")]


def write_summary(out: str) -> str | None:
    """The summary section from every script's saved raw results (those that exist)."""
    rows, runs = [], []
    old_rows, old_runs = _previous_summary(out)
    for name in SCRIPTS:
        path = raw_path(out, name)
        if not path.exists():  # measured elsewhere (raw results are not in git): keep what the summary said
            number = importlib.import_module(f"bench.{name}").TITLE.split()[0] + " "
            rows += [r for r in old_rows if r[0].startswith(number)]
            runs += [line for line in old_runs if line.startswith(f"- `bench.{name}`")]
            continue
        saved = json.loads(path.read_text())
        rows += importlib.import_module(f"bench.{name}").summary(saved["data"])
        date = next((line for line in saved["header"].splitlines() if line.startswith("- Date:")), "- Date: ?")
        load = next((line for line in saved["header"].splitlines() if line.startswith("- Load")), "")
        quick = " (--quick)" if saved["data"].get("quick") else ""
        runs.append(
            f"- `bench.{name}`{quick}: {date[len('- Date: ') :].split(',')[0]}; "
            f"{load[2:].replace('Load average (1/5/15 min) ', 'load ')}"
        )
    if not rows:
        return None
    body = "\n".join(
        [
            "The targets of GitHub issues 8 and 11 (overhead <= 1.10x since issue 11) and the server load of issue "
            "15, from the latest run of each script (details in the sections below; "
            "this table is rebuilt by `python -m bench.run_all` from their raw results).",
            "",
            table(["question", "target", "measured", "result"], rows),
            "",
            "Runs summarised here:",
            "",
            *runs,
        ]
    )
    write_section(out, "summary", "Summary", body)
    return body


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (what tests/test_bench.py checks)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file the sections are written to")
    p.add_argument("--only", nargs="+", choices=SCRIPTS, default=list(SCRIPTS), help="run only these scripts")
    p.add_argument("--summary-only", action="store_true", help="run nothing: rewrite the summary section only")
    args = p.parse_args(argv)
    failed = []
    runs = [(name, []) for name in ([] if args.summary_only else args.only)]
    if not args.quick:  # the extra runs need full data sets (fetched: never in --quick, which tests run offline)
        runs += [(name, list(extra)) for name, _ in runs for _, extra in EXTRA_RUNS.get(name, ())]
    for name, extra in runs:
        cmd = [PYTHON, "-m", f"bench.{name}", "--out", args.out, *extra] + (["--quick"] if args.quick else [])
        print(f"==> {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, env=clean_env()).returncode
        print(
            f"<== bench.{name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.0f} s\n",
            flush=True,
        )
        if rc != 0:
            failed.append(name)
    summary = write_summary(args.out)
    if summary:
        print(summary, flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all benchmarks done: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
