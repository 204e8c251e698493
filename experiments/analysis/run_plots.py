"""The plots of one run (learning curves, real vs predicted classes, confusion matrix), as PNG files.

Drawn with matplotlib's object API (a :class:`~matplotlib.figure.Figure`
saved with ``fig.savefig``): no pyplot and no backend switch, so importing
this module changes nothing for the rest of the process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from experiments.config.metrics import keras_log_name


def plot_history(history: pd.DataFrame, out_dir: Path, metric: str) -> list[Path]:
    """Loss and metric curves, training vs validation, one PNG each (lecture 4.4 / 6.4).

    Args:
        history: Keras ``History.history`` as a frame, one row per epoch.
        out_dir: folder to write into (created).
        metric: the metric as configured (``acc`` is looked up as Keras logs it, ``accuracy``).

    Returns:
        ``curves_loss.png`` and ``curves_metric.png``, each when its column exists.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    epochs = np.arange(1, len(history) + 1)
    metric = keras_log_name(metric)
    for key, title, fname in (
        ("loss", "Loss - training and validation", "curves_loss.png"),
        (metric, f"{metric} - training and validation", "curves_metric.png"),
    ):
        if key not in history:
            continue
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        _margins(fig, left=0.8, bottom=0.6, top=0.4, right=0.15)
        ax.plot(epochs, history[key], "b", label=f"{key} - training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "r", label=f"{key} - validation")
        ax.set(title=title, xlabel="epoch", ylabel=key)
        ax.grid(True)
        ax.legend()
        path = out_dir / fname
        fig.savefig(path, dpi=90)
        paths.append(path)
    return paths


def plot_predictions(y_true: np.ndarray, y_pred: np.ndarray, out_dir: Path, n: int = 150) -> Path:
    """Real vs predicted class of the first ``n`` test samples (lecture 4.5 / 6.5).

    Args:
        y_true: real classes.
        y_pred: predicted classes.
        out_dir: folder to write into.
        n: number of samples shown.
    """
    fig = Figure(figsize=(14, 4.5))
    ax = fig.subplots()
    _margins(fig, left=0.6, bottom=0.6, top=0.4, right=0.15)
    ax.plot(y_true[:n], "bo", label="real class")
    ax.plot(y_pred[:n], "ro", markersize=4, label="predicted class")
    wrong = int(np.sum(y_true[:n] != y_pred[:n]))
    ax.set(title=f"First {min(n, len(y_true))} test samples: {wrong} misclassified", xlabel="sample", ylabel="class")
    ax.grid(True)
    ax.legend()
    path = out_dir / "predictions.png"
    fig.savefig(path, dpi=90)
    return path


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, out_dir: Path) -> Path:
    """Confusion matrix of the test set (``sklearn.metrics.confusion_matrix``), counts in each cell.

    Args:
        y_true: real classes, integers in ``[0, num_classes)``.
        y_pred: predicted classes, integers in ``[0, num_classes)``.
        num_classes: rows and columns, including classes that never occur.
        out_dir: folder to write into.
    """
    k = int(num_classes)
    cm = confusion_matrix(np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int), labels=np.arange(k))
    fig = Figure(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax = fig.subplots()
    _margins(fig, left=0.75, bottom=0.6, top=0.4, right=0.1)
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set(
        title="Confusion matrix (test)", xlabel="predicted class", ylabel="real class", xticks=range(k), yticks=range(k)
    )
    path = out_dir / "confusion_matrix.png"
    fig.savefig(path, dpi=90)
    return path


def _margins(fig: Figure, left: float, bottom: float, top: float, right: float) -> None:
    """Fixed margins in inches (room for the tick labels and titles these plots have); ``tight_layout`` would
    measure every text first: a third of a run's plotting time (290 ms -> 194 ms for the four files, 20 epochs)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height)
