"""The MNIST download (experiments.data.download): per-request timeout, SHA-256 check, atomic rename.

Nothing here touches the network: the "server" is a ``file://`` URL or an
``http.server`` on 127.0.0.1 serving a small generated mnist.npz, with the
expected hash patched to that file's.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from experiments.data import load_dataset
from experiments.data import mnist as mnist_mod
from experiments.data.download import fetch
from experiments.errors import DataError


def _npz(folder: Path) -> tuple[Path, str]:
    """A small valid mnist.npz in ``folder`` and its SHA-256."""
    rng = np.random.default_rng(0)
    file = folder / "mnist.npz"
    np.savez(
        file,
        x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
        y_train=np.arange(200) % 10,
        x_test=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_test=np.arange(50) % 10,
    )
    return file, hashlib.sha256(file.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path):
    """``(url, sha256, seen)``: mnist.npz served on 127.0.0.1; ``seen`` records the process default timeout."""
    root = tmp_path / "www"
    root.mkdir()
    _, digest = _npz(root)
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            seen.append(socket.getdefaulttimeout())  # process-wide state while the download runs
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist.npz", digest, seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """An empty Keras cache in ``tmp_path/keras`` and downloads allowed (conftest sets LAYERLAB_OFFLINE).

    The package index (tried after Keras' origin) is a closed local port, and
    the machine's pip.conf is ignored: nothing reaches the network.
    """
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("LAYERLAB_OFFLINE", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{s.getsockname()[1]}/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    return tmp_path / "keras" / "datasets"


def _point_at(monkeypatch, url: str, digest: str, timeout: float = 5.0) -> None:
    monkeypatch.setattr(mnist_mod, "MNIST_ORIGIN", url)
    monkeypatch.setattr(mnist_mod, "MNIST_SHA256", digest)
    monkeypatch.setattr(mnist_mod, "DOWNLOAD_TIMEOUT_S", timeout)


def test_download_into_keras_cache_with_a_per_request_timeout(served, online, monkeypatch):
    url, digest, seen = served
    _point_at(monkeypatch, url, digest, timeout=7.5)
    timeouts = []
    real = urllib.request.urlopen

    def spy(u, *args, **kwargs):
        timeouts.append(kwargs.get("timeout"))
        return real(u, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", spy)
    before = socket.getdefaulttimeout()
    splits = load_dataset({"name": "mnist"}, seed=0)
    assert len(splits.test[1]) == 50 and (len(splits.train[1]), len(splits.val[1])) == (180, 20)
    assert timeouts == [7.5]  # the timeout is the request's ...
    assert seen == [before] and socket.getdefaulttimeout() == before  # ... never the process's
    assert sorted(p.name for p in online.iterdir()) == ["mnist.npz", "mnist.npz.lock"]  # no temporary left
    assert hashlib.sha256((online / "mnist.npz").read_bytes()).hexdigest() == digest
    monkeypatch.setattr(urllib.request, "urlopen", None)  # the second load uses the cache
    assert len(load_dataset({"name": "mnist"}, seed=0).test[1]) == 50


def test_wrong_hash_leaves_nothing(tmp_path, online, monkeypatch):
    file, digest = _npz(tmp_path)
    _point_at(monkeypatch, file.as_uri(), "0" * 64)
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist"}, seed=0)
    text = str(info.value)
    assert info.value.path == "dataset.path" and "SHA-256" in text and digest in text and "mnist_sample" in text
    assert not online.exists() or [p.name for p in online.iterdir()] == ["mnist.npz.lock"]


def test_fetch_replaces_an_existing_file(tmp_path):
    file, digest = _npz(tmp_path)
    dest = tmp_path / "cache" / "sub" / "mnist.npz"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    assert fetch(file.as_uri(), dest, digest.upper(), timeout=1) == dest
    assert dest.read_bytes() == file.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["mnist.npz"]


def test_unreachable_server_is_a_data_error(online, monkeypatch):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _point_at(monkeypatch, f"http://127.0.0.1:{port}/mnist.npz", "0" * 64)
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist"}, seed=0)
    text = str(info.value)
    assert "download from" in text and "failed" in text and "dataset=mnist_sample" in text
    assert str(online / "mnist.npz") in text


def test_silent_server_times_out(online, monkeypatch):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        _point_at(monkeypatch, f"http://127.0.0.1:{listener.getsockname()[1]}/mnist.npz", "0" * 64, timeout=0.3)
        before = socket.getdefaulttimeout()
        # No clock here: a server that never answers would hang the test (pytest-timeout fails it); the
        # message proves the 0.3 s timeout ended the wait.
        with pytest.raises(DataError) as info:
            load_dataset({"name": "mnist"}, seed=0)
    assert "timed out" in str(info.value)
    assert socket.getdefaulttimeout() == before
    assert not online.exists() or [p.name for p in online.iterdir()] == ["mnist.npz.lock"]


def test_offline_never_calls_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("LAYERLAB_OFFLINE", "1")

    def boom(*args, **kwargs):
        raise AssertionError("urlopen called although LAYERLAB_OFFLINE=1")

    monkeypatch.setattr(urllib.request, "urlopen", boom)
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist"}, seed=0)
    assert "LAYERLAB_OFFLINE" in str(info.value)


def test_no_process_wide_socket_timeout_in_the_data_package():
    folder = Path(mnist_mod.__file__).parent
    assert not [p.name for p in folder.glob("*.py") if "setdefaulttimeout(" in p.read_text()]
