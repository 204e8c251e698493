"""A sweep as a person sees it in the MLflow UI, in a real headless Chromium.

A finished 2x2 sweep (model.activation x seed, tiny data) is served by ``mlflow server`` on a free
loopback port; Chromium (Debian's ``chromium``, /usr/bin/chromium, installed by
scripts/install_browser.sh) driven by Python playwright opens the "Model training" view, expands the
sweep's parent run and reads what is on the screen: the parent, its 4 children under readable names,
the filled Dataset column, and on the parent's page its description with the verdict. Screenshots go
to the test's tmp folder (``ui_screens/``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from tests.conftest import free_port, run_cli

pytestmark = pytest.mark.slow  # a real sweep, a real server, a real browser

CHROMIUM = "/usr/bin/chromium"
CHILDREN = ["activation=abs seed=0", "activation=abs seed=1", "activation=relu seed=0", "activation=relu seed=1"]


@pytest.fixture(scope="module")
def served_sweep(tmp_path_factory):
    """(base URL, experiment id, screenshot folder) of a served store holding one finished 2x2 sweep."""
    tmp = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{tmp}/mlflow.db"
    proc = run_cli(
        "-m",
        "model.activation=abs,relu",
        "seed=0,1",
        "dataset.limit=300",
        "training.epochs=1",
        "tracking.log_model=false",
        "training.checkpoint.enabled=false",
        f"tracking.uri={uri}",
        "tracking.experiment=ui_sweep",
        tmp_path=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp_id = mlflow.MlflowClient(uri).get_experiment_by_name("ui_sweep").experiment_id
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, "mlflow server exited"
            assert time.monotonic() < deadline, "mlflow server did not answer /health within 90 s"
            time.sleep(0.5)
        shots = tmp / "ui_screens"
        shots.mkdir()
        yield base, exp_id, shots
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _open_runs(page, base: str, exp_id: str) -> None:
    """The experiment in the "Model training" view (MLflow 3.17 opens the GenAI view first)."""
    page.goto(f"{base}/#/experiments/{exp_id}")
    page.wait_for_timeout(4000)
    got_it = page.get_by_role("button", name="Got it")
    if got_it.count():
        got_it.first.click()
    toggle = page.get_by_text("Model training", exact=True)
    if toggle.count():
        toggle.first.click()
    page.locator("[role=row]").filter(has_text="sweep ").first.wait_for(timeout=30000)
    close = page.get_by_role("button", name="Close")  # the assistant's side panel takes a third of the width
    if close.count():
        close.first.click()
    page.wait_for_timeout(1000)


def _widen_run_names(page) -> None:
    """Drag the Run Name column wider, as a person would, so the names are not cut (best effort)."""
    handle = page.locator(".ag-header-cell[col-id*='Run Name'] .ag-header-cell-resize").first
    if not handle.count():
        return
    box = handle.bounding_box()
    if box:
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 170, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()


def test_the_sweep_reads_at_a_glance_in_a_real_browser(served_sweep):
    from playwright.sync_api import sync_playwright

    base, exp_id, shots = served_sweep
    assert Path(CHROMIUM).exists(), "no /usr/bin/chromium: run scripts/install_browser.sh (make test does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 800})
            _open_runs(page, base, exp_id)
            parent_row = page.locator("[role=row]").filter(has_text="sweep ").first
            page.screenshot(path=str(shots / "runs_collapsed.png"))
            # Expand the parent: the button left of its name in the Run Name cell.
            parent_row.locator("[role=gridcell][col-id*='Run Name'] button").first.click()
            _widen_run_names(page)
            for name in CHILDREN:
                page.get_by_text(name, exact=True).first.wait_for(timeout=20000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "sweep_expanded.png"))
            rows = page.locator("[role=row]")
            texts = [rows.nth(i).inner_text() for i in range(rows.count())]
            assert sum(any(name in t for name in CHILDREN) for t in texts) == 4, texts
            # The Dataset column is filled: every child shows its training split (name and size).
            datasets = page.locator("[role=gridcell][col-id*='dataset' i]").filter(
                has_text=re.compile(r"mnist_sample \(training, \d+ rows\)")
            )
            assert datasets.count() == 4, page.inner_text("body")

            # The parent's page: its description holds the comparison and the verdict in words.
            parent_row.get_by_role("link").filter(has_text="sweep ").first.click()
            page.get_by_text("Verdicts").first.wait_for(timeout=20000)
            more = page.get_by_text("Show more", exact=True)
            if more.count():  # the description is folded after a few lines
                more.first.click()
            page.wait_for_timeout(1000)
            body = page.inner_text("body")
            page.screenshot(path=str(shots / "parent_description.png"), full_page=True)
            assert "Comparisons along each factor" in body
            assert "model.activation=abs and model.activation=relu" in body or "is better than" in body
            assert "Best run" in body and "best_run" in body
        finally:
            browser.close()
    assert {p.name for p in shots.glob("*.png")} == {
        "runs_collapsed.png",
        "sweep_expanded.png",
        "parent_description.png",
    }
