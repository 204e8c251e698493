"""The plots of one run: PNG files from matplotlib's object API, with no process-wide side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.analysis import run_plots

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


def test_importing_the_analysis_sets_no_backend_and_no_pyplot():
    # The backend is read raw: matplotlib.get_backend() itself would import pyplot to resolve it.
    code = (
        "import sys, matplotlib; backend = lambda: dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "before = backend()\n"
        "import experiments.analysis.run_plots, experiments.analysis.compare\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert backend() == before, 'backend switched'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_plot_history_keras_names(tmp_path):
    hist = pd.DataFrame(
        {"loss": [0.9, 0.5], "val_loss": [1.0, 0.6], "accuracy": [0.6, 0.8], "val_accuracy": [0.5, 0.7]}
    )
    paths = run_plots.plot_history(hist, tmp_path / "plots", "acc")  # configured as "acc", logged as "accuracy"
    assert [p.name for p in paths] == ["curves_loss.png", "curves_metric.png"]
    assert all(p.read_bytes()[:8] == PNG for p in paths)


def test_plot_predictions_and_confusion(tmp_path):
    y_true = np.array([0, 1, 2, 2, 1])
    y_pred = np.array([0, 2, 2, 2, 1])
    assert run_plots.plot_predictions(y_true, y_pred, tmp_path).read_bytes()[:8] == PNG
    # 4 classes although class 3 never occurs: the matrix is 4 x 4.
    path = run_plots.plot_confusion(y_true, y_pred, 4, tmp_path)
    assert path.name == "confusion_matrix.png" and path.read_bytes()[:8] == PNG
