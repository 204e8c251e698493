"""Mean learning curves per group with a 95% CI band, as PNG files.

Drawn with matplotlib's object API (a :class:`~matplotlib.figure.Figure`
saved with ``fig.savefig``): no pyplot, so no global backend switch and no
interference with a caller that uses another backend.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.analysis.groups import SEED_KEY, grouped
from experiments.analysis.metric import MetricLike, pretty_metric, resolve_metric
from experiments.analysis.runs import finished, history
from experiments.analysis.stats import CONFIDENCE, ci_half_width


def curve_matrix(sub: pd.DataFrame, key: str) -> np.ndarray:
    """Runs x epochs matrix of one metric, NaN-padded to the longest run.

    Args:
        sub: runs of one group.
        key: MLflow metric key.
    """
    series = [history(cell, key) for cell in sub.get("history", [])]
    series = [s for s in series if s.size]
    if not series:
        return np.empty((0, 0))
    out = np.full((len(series), max(s.size for s in series)), np.nan)
    for i, s in enumerate(series):
        out[i, : s.size] = s
    return out


def curve_band(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch mean over runs and the half width of its t-based 95% CI.

    Args:
        mat: runs x epochs (NaN where a run has no value).

    Returns:
        ``(mean, half)``; NaN where no run (mean) or fewer than 2 runs (half)
        have a value at that epoch.
    """
    n = np.sum(~np.isnan(mat), axis=0)
    with warnings.catch_warnings():  # "mean of empty slice", "degrees of freedom <= 0": NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(mat, axis=0)
        std = np.nanstd(mat, axis=0, ddof=1)
    return mean, ci_half_width(std, n, CONFIDENCE)


def curve_filename(key: str) -> str:
    """``val_sparse_categorical_accuracy`` -> ``curves_val_accuracy.png``.

    Args:
        key: MLflow metric key.
    """
    return f"curves_{pretty_metric(key).replace(' ', '_')}.png"


def plot_curves(
    df: pd.DataFrame,
    out_dir: str | Path,
    metric: MetricLike = None,
    *,
    mode: str | None = None,
    replicate_key: str = SEED_KEY,
) -> list[Path]:
    """Plot mean learning curves per group with a 95% CI band.

    One PNG per val metric: the compared metric's and ``val_loss``
    (``curves_val_accuracy.png`` and ``curves_val_loss.png`` for an
    accuracy).  The line is the mean over the group's FINISHED runs at each
    epoch; the band is the t-based 95% CI of that mean (drawn where >= 2 runs
    reached the epoch: with early stopping, later epochs average fewer runs).
    Epochs are 1-based (1 = after the first epoch), as in
    ``epochs_to_target_mean``.

    Args:
        df: runs frame with a ``history`` column.
        out_dir: folder to write into (created).
        metric: the compared metric; ``None``: the runs' ``layerlab.metric`` tag.
        mode: its direction (only checked here).
        replicate_key: the replicate key (not a group key).

    Returns:
        The written paths; a metric without any history is skipped.
    """
    spec = resolve_metric(df, metric, mode)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fin = finished(df)
    _, labels, groups = grouped(fin, replicate_key)
    written = []
    for key in dict.fromkeys((spec.val, "val_loss")):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot(1, 1, 1)
        drawn = False
        for label, _ in groups:
            mat = curve_matrix(fin[labels == label], key)
            if mat.size == 0:
                continue
            mean, half = curve_band(mat)
            epochs = np.arange(1, mat.shape[1] + 1)
            (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{label} (n={mat.shape[0]})")
            ok = np.isfinite(half)
            if ok.any():
                ax.fill_between(epochs, mean - half, mean + half, where=ok, alpha=0.2, color=line.get_color())
            drawn = True
        if not drawn:
            continue
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.set_ylabel(pretty_metric(key))
        ax.set_title(f"{pretty_metric(key)}: mean over seeds, band = 95% CI of the mean (t)")
        ax.grid(alpha=0.3)
        ax.legend(title="line = mean, band = 95% CI", fontsize="small")
        fig.tight_layout()
        path = out / curve_filename(key)
        fig.savefig(path, dpi=100)
        written.append(path)
    return written
