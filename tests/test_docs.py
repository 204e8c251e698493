"""The docs site (mkdocs.yml, docs/) builds with warnings as errors: a broken link or anchor, a page missing from
the nav, a module the API reference names that no longer imports, or a docstring griffe cannot parse fails here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def _mkdocs_config() -> dict:
    """mkdocs.yml as data; its `!relative` tags (MkDocs' own YAML tags) read as plain strings."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, tag, node: loader.construct_scalar(node))
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)  # a SafeLoader subclass


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    # NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2.0 on every build (noise, not a build warning).
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_docs_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    result = _mkdocs_build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stdout + result.stderr
    # Every page of the nav was written, and the API reference was generated from the docstrings.
    config = _mkdocs_config()
    pages = []
    stack = list(config["nav"])
    while stack:
        entry = stack.pop()
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            if isinstance(value, list):
                stack.extend(value)
            else:
                pages.append(value)
    for page in pages:
        html = site / ("index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html")
        assert html.is_file(), f"{page} was not built"
    assert "JobConfig" in (site / "api/config/index.html").read_text()
    assert "register_layer" in (site / "api/layers/index.html").read_text()
    # The benchmarks page includes BENCHMARKS.md itself.
    assert "Measured by hand" in (site / "benchmarks/index.html").read_text()


def test_docs_config_fails_on_a_broken_anchor(tmp_path):
    """The project's own settings (strict, link validation) turn a link to a missing heading into a failure."""
    ours = _mkdocs_config()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the part](other.md#no-such-heading).\n")
    (docs / "other.md").write_text("# Other\n\n## A heading\n")
    config = {
        "site_name": "t",
        "docs_dir": str(docs),
        "nav": ["index.md", "other.md"],
        "theme": ours["theme"],
        "strict": ours["strict"],
        "validation": ours["validation"],
        "markdown_extensions": ["toc"],
    }
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(yaml.safe_dump(config))
    result = _mkdocs_build(config_file, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-heading" in result.stdout + result.stderr


def test_readme_is_short_and_its_links_resolve():
    """The README is the five-minute read (the rest lives in docs/); every relative link in it points at a file."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md is over 250 lines: move the new text into a page of docs/"
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert "docs/index.md" in local
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
