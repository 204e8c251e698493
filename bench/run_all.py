"""Run every benchmark, one after the other, each in its own process (``make bench``).

    python -m bench.run_all [--quick] [--out FILE] [--only NAME ...]

Each script rewrites its own section of the output file (default
``BENCHMARKS.md``). A failing script is reported and the others still run;
the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.common import DEFAULT_OUT, PYTHON, ROOT, SECTIONS, clean_env

SCRIPTS = SECTIONS  # overhead, sweep_throughput, scaling, tracking_cost


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (what tests/test_bench.py checks)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="markdown file the sections are written to")
    p.add_argument("--only", nargs="+", choices=SCRIPTS, default=list(SCRIPTS), help="run only these scripts")
    args = p.parse_args(argv)
    failed = []
    for name in args.only:
        cmd = [PYTHON, "-m", f"bench.{name}", "--out", args.out] + (["--quick"] if args.quick else [])
        print(f"==> {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT, env=clean_env()).returncode
        print(f"<== bench.{name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.0f} s\n",
              flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all benchmarks done: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
