"""Shared helpers of the benchmark scripts: machine facts, statistics, tables, BENCHMARKS.md sections.

Every script ``bench/<name>.py``:

* takes ``--quick`` (tiny sizes, for ``tests/test_bench.py``) and ``--out``
  (the markdown file whose section it rewrites; default ``BENCHMARKS.md`` in
  the project root);
* prints its table(s) to stdout;
* replaces only its own section of the output file, between the markers
  ``<!-- bench:<name>:start -->`` and ``<!-- bench:<name>:end -->``, with the
  command, the date and the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "BENCHMARKS.md"
PYTHON = sys.executable

# The benchmark scripts, and the section order in BENCHMARKS.md (a new section is inserted at its place):
# the summary that bench.run_all writes from the scripts' raw results comes first.
SCRIPTS = (
    "overhead",
    "sweep_vs_shell",
    "sweep_profile",
    "scaling",
    "tracking_cost",
    "load_runs",
    "server_load",
    "lecture_full",
    "lecture_protocol",
    "fused_replicates",
    "fused_sweep",
)
# Scripts `make bench` (bench.run_all) runs a second time with other arguments: (the section that run writes,
# its arguments); the section goes right after the script's own.
EXTRA_RUNS = {
    "fused_sweep": (("fused_sweep_mnist", ("--dataset", "mnist")),),
    "load_runs": (("load_runs_server", ("--server", "1000", "10000")),),
}
SECTIONS = ("summary", *(s for name in SCRIPTS for s in (name, *(extra for extra, _ in EXTRA_RUNS.get(name, ())))))

HEADER = """# Benchmarks

Measured by the scripts in `bench/`; every number below was written by the
script named in its section (never edited by hand). Rerun one question with
`python -m bench.<name>` or all of them with `make bench`
(`python -m bench.run_all`); `--quick` runs tiny sizes (what
`tests/test_bench.py` does, into a temporary file) and `--out FILE` writes
somewhere else. Each script rewrites only its own section.

Timings depend on the machine and on what else runs on it: each section
records the machine, the load average before and after, and the date.
Compare numbers only within one section run.
"""


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The common options of every benchmark script."""
    p = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script works, numbers mean little")
    p.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help=f"markdown file whose '{name}' section is rewritten (default: {DEFAULT_OUT.name} in the project root)",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite the section from the raw results the last run saved (see raw_path)",
    )
    return p


def raw_path(out: str | Path, name: str) -> Path:
    """Where a run keeps its raw measurements: ``bench/results/<name>.json`` for the default output
    (git-ignored), else ``<out stem>.<name>.json`` beside the output file."""
    out = Path(out)
    if out.resolve() == DEFAULT_OUT.resolve():
        return ROOT / "bench" / "results" / f"{name}.json"
    return out.parent / f"{out.stem}.{name}.json"


def save_raw(out: str | Path, name: str, header: Header, data: dict) -> Path:
    path = raw_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"header": header.markdown(), "data": data}, indent=1, default=str))
    return path


def load_raw(out: str | Path, name: str) -> tuple[str, dict]:
    path = raw_path(out, name)
    if not path.exists():
        raise SystemExit(f"bench.{name}: no raw results at {path}; run the benchmark first")
    saved = json.loads(path.read_text())
    return saved["header"], saved["data"]


def command_line(name: str, argv: Sequence[str] | None) -> str:
    """How the script was started, for the section header."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "-m", f"bench.{name}", *(shlex.quote(a) for a in args)])


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return math.nan


def _dist_version(*names: str) -> str:
    for n in names:
        try:
            return f"{n} {metadata.version(n)}"
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def _tf_build_from_files() -> dict:
    """``tf.sysconfig.get_build_info()`` without importing TensorFlow (parsed from its build_info.py)."""
    import ast

    for name in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            if str(f).replace("\\", "/").endswith("python/platform/build_info.py"):
                try:
                    tree = ast.parse(Path(dist.locate_file(f)).read_text())
                    for node in ast.walk(tree):
                        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "OrderedDict":
                            return dict(ast.literal_eval(node.args[0]))
                except (OSError, SyntaxError, ValueError):
                    return {}
    return {}


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_info(with_tf: bool = True) -> dict[str, str]:
    """Cores, memory, CPU model, TensorFlow build and the versions that matter."""
    info = {
        "cores": str(os.cpu_count()),
        "memory": f"{_mem_gib():.1f} GiB",
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "tensorflow": _dist_version("tensorflow", "tensorflow-cpu", "tf-nightly"),
        "keras": _dist_version("keras"),
        "mlflow": _dist_version("mlflow"),
        "hydra": _dist_version("hydra-core"),
    }
    if with_tf:  # the script imports TensorFlow anyway: ask it
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        build = dict(tf.sysconfig.get_build_info())
        gpus = f"; {len(tf.config.list_physical_devices('GPU'))} GPU(s) visible"
    else:  # read the build facts from the installed files: importing TensorFlow costs seconds
        build, gpus = _tf_build_from_files(), ""
    if build:
        kind = f"CUDA {build.get('cuda_version')}" if build.get("is_cuda_build") else "CPU-only"
        info["tensorflow"] += f" ({kind} build, {build.get('cpu_compiler', '?')}{gpus})"
    return info


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        return commit + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "n/a"


class Header:
    """Collects what every section states: command, date, machine, load before and after."""

    def __init__(self, name: str, argv: Sequence[str] | None, quick: bool, with_tf: bool = True):
        self.name = name
        self.command = command_line(name, argv)
        self.quick = quick
        self.started = _dt.datetime.now().astimezone()
        self.load_before = load_average()
        self.machine = machine_info(with_tf)
        self.commit = git_commit()
        self.t0 = time.perf_counter()

    def markdown(self) -> str:
        m = self.machine
        lines = [
            f"- Command: `{self.command}`"
            + (" (**--quick**: tiny sizes, the numbers only show that it runs)" if self.quick else ""),
            f"- Date: {self.started.strftime('%Y-%m-%d %H:%M %Z')}, took {time.perf_counter() - self.t0:.0f} s; "
            f"commit {self.commit}",
            f"- Machine: {m['cores']} cores, {m['memory']}, {m['cpu']}; Python {m['python']}",
            f"- Software: {m['tensorflow']}; {m['keras']}; {m['mlflow']}; {m['hydra']}",
            f"- Load average (1/5/15 min) before: {self.load_before}; after: {load_average()}",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Statistics and tables
# --------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else math.nan


def spread(values: Iterable[float], digits: int = 2, unit: str = "") -> str:
    """``median (min-max, n=N)``."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}{unit} (n=1)"
    return f"{statistics.median(vals):.{digits}f}{unit} ({min(vals):.{digits}f}-{max(vals):.{digits}f}, n={len(vals)})"


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.{digits}f}"
    return str(x)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table (also what the scripts print: readable as text)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    out = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


# --------------------------------------------------------------------------
# BENCHMARKS.md sections
# --------------------------------------------------------------------------


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def write_section(out: str | Path, name: str, title: str, body: str, header: Header | str | None = None) -> Path:
    """Replace (or insert, in :data:`SECTIONS` order) the section ``name`` of ``out``."""
    out = Path(out)
    start, end = markers(name)
    parts = [start, f"## {title}", ""]
    if header is not None:
        parts += [header if isinstance(header, str) else header.markdown(), ""]
    parts += [body.rstrip(), end]
    block = "\n".join(parts)
    text = out.read_text(encoding="utf-8") if out.exists() else HEADER
    if start in text and end in text and text.index(start) < text.index(end):
        i, j = text.index(start), text.index(end) + len(end)
        text = text[:i] + block + text[j:]
    else:
        later = [s for s in SECTIONS[SECTIONS.index(name) + 1 :]] if name in SECTIONS else []
        positions = [text.index(markers(s)[0]) for s in later if markers(s)[0] in text]
        if positions:
            i = min(positions)
            text = text[:i] + block + "\n\n" + text[i:]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: quiet TF, no inherited tracking or sweep settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LAYERLAB_", "TF_NUM_", "OMP_NUM_"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


QUICK_NOTE = "_--quick run: tiny sizes; these numbers only show that the script works._"


def run_script(main, name: str) -> None:
    """``sys.exit(main())`` for ``python -m bench.<name>``; a failed child command is one line on stderr, exit 1."""
    try:
        sys.exit(main())
    except ChildFailed as exc:
        print(f"bench.{name}: a command failed: {exc}", file=sys.stderr)
        sys.exit(1)


class ChildFailed(RuntimeError):
    pass


def run_timed(
    cmd: Sequence[str], *, cwd: str | Path, env: dict[str, str] | None = None, timeout: float = 900
) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command; return (wall seconds from spawn to exit, the completed process).

    The process also gets ``cpu_s``: the user + system CPU seconds of the child
    and of the processes it waited for. On a shared machine CPU time is much
    less disturbed by other work than wall time (call this from one thread
    only: it reads the difference of ``RUSAGE_CHILDREN``).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=str(cwd), env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-30:])
        raise ChildFailed(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{tail}")
    return wall, proc


def say(*args: Any) -> None:
    print(*args, flush=True)


def finish(args, name: str, title: str, header: Header | None, data: dict, render) -> int:
    """Save the raw results (unless re-rendering), render the section, print it and write it."""
    if args.render_only:
        header_md, data = load_raw(args.out, name)
    else:
        header_md = header.markdown()
        save_raw(args.out, name, header, data)
    body = render(data)
    print(body)
    path = write_section(args.out, name, title, body, header_md)
    say(f"\nwrote section '{name}' of {path} (raw results: {raw_path(args.out, name)})")
    return 0
