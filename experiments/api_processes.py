"""How :mod:`experiments.api` runs ``runner.py`` in a child process and finds the run it logged."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from experiments.errors import LayerlabError
from experiments.tracking.uri import PROJECT_ROOT, resolve_uri


def launch_runner(
    args: list[str], tracking_uri: str | None, echo: bool, timeout: float | None
) -> subprocess.CompletedProcess:
    """``python runner.py ARGS`` in the project root, its output captured (and echoed when asked)."""
    env = dict(os.environ, LAYERLAB_PROGRESS="plain")
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = resolve_uri(tracking_uri)
    cmd = [sys.executable, str(PROJECT_ROOT / "runner.py"), *args]
    with subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        lines = []
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if echo:
                    print(line, end="", flush=True)
            proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "")


def find_run(uri: str, tag: str, value: str) -> Any:
    """The newest run of any experiment tagged ``tag = value`` (None when there is none)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_ids = [e.experiment_id for e in client.search_experiments()]
    found = (
        client.search_runs(
            experiment_ids,
            filter_string=f"tags.`{tag}` = '{value}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment_ids
        else []
    )
    return found[0] if found else None


def failure_of(proc: subprocess.CompletedProcess, what: str) -> LayerlabError:
    """The child's own message (its ``layerlab: error:`` paragraph) when it logged nothing."""
    errors = [line for line in proc.stdout.splitlines() if "error" in line.lower()]
    message = errors[-1] if errors else (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    return LayerlabError(
        f"{what} logged no run (exit {proc.returncode}): {message}",
        path="overrides",
        value=list(proc.args[2:]),
        fix="correct the override named above; Run.log / "
        "Sweep.log or the same command in a shell show the whole output",
    )
