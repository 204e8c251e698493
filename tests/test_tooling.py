"""The linter and the type checker the project configures (pyproject.toml: [tool.ruff], [tool.mypy]) are clean,
so a lint or type error fails the suite (and CI) rather than waiting for someone's pre-commit hook."""

from __future__ import annotations

import subprocess
import sys

import tomllib

from tests.conftest import ROOT


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_check_is_clean():
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check found problems (fix them, or `ruff check --fix`):\n{result.stdout}"


def test_mypy_is_clean_on_the_typed_packages(tmp_path):
    files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    assert {"experiments/config", "experiments/job", "layers"} <= set(files)
    result = _run("mypy", "--cache-dir", str(tmp_path / "mypy_cache"))  # the packages of [tool.mypy] files
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
    assert "Success" in result.stdout


def test_pre_commit_runs_the_same_tools():
    """The hooks are local (no download at commit time): ruff, ruff's formatter, mypy, the subject's length."""
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "subject-length"} <= set(hooks)
    assert all(repo["repo"] == "local" for repo in config["repos"])
    result = _run("pre_commit", "validate-config", ".pre-commit-config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
