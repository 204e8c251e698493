"""The lecture's plots (learning curves, real vs predicted classes) and a confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_history(history: pd.DataFrame, out_dir: Path, metric: str) -> list[Path]:
    """Loss and metric curves, training vs validation, one PNG each (lecture 4.4 / 6.4)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    epochs = np.arange(1, len(history) + 1)
    for key, title, fname in (("loss", "Loss - training and validation", "curves_loss.png"),
                              (metric, f"{metric} - training and validation", "curves_metric.png")):
        if key not in history:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(epochs, history[key], "b", label=f"{key} - training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "r", label=f"{key} - validation")
        ax.set(title=title, xlabel="epoch", ylabel=key)
        ax.grid(True)
        ax.legend()
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_predictions(y_true: np.ndarray, y_pred: np.ndarray, out_dir: Path, n: int = 150) -> Path:
    """Real vs predicted class of the first ``n`` test samples (lecture 4.5 / 6.5)."""
    fig, ax = plt.subplots(figsize=(14, 4.5))
    ax.plot(y_true[:n], "bo", label="real class")
    ax.plot(y_pred[:n], "ro", markersize=4, label="predicted class")
    wrong = int(np.sum(y_true[:n] != y_pred[:n]))
    ax.set(title=f"First {min(n, len(y_true))} test samples: {wrong} misclassified", xlabel="sample", ylabel="class")
    ax.grid(True)
    ax.legend()
    fig.tight_layout()
    path = out_dir / "predictions.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true.astype(int), y_pred.astype(int)), 1)
    return cm


def plot_confusion(cm: np.ndarray, out_dir: Path) -> Path:
    """Confusion matrix of the test set, counts in each cell."""
    k = cm.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set(title="Confusion matrix (test)", xlabel="predicted class", ylabel="real class",
           xticks=range(k), yticks=range(k))
    fig.tight_layout()
    path = out_dir / "confusion_matrix.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
