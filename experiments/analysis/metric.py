"""Which metric a comparison judges, its direction, and its readable name.

A job run carries the metric it is judged by in the tags
``layerlab.metric`` (the Keras log name, e.g. ``sparse_categorical_accuracy``)
and ``layerlab.metric_mode`` (``max``/``min``), written from
:func:`experiments.config.metrics.compared_metric`.  A comparison uses that
metric unless told otherwise; stores from before these tags fall back to
:data:`FALLBACK_METRIC`.  The groups are compared on the final ``test_<name>``
value; the ``val_<name>`` history gives the learning curves and the epochs to
a target.
"""

from __future__ import annotations

import pandas as pd

from experiments.config.metrics import MetricSpec, default_mode, keras_log_name
from experiments.errors import LayerlabError
from experiments.tracking import tags

#: The metric of runs logged before the ``layerlab.metric`` tag existed.
FALLBACK_METRIC = "sparse_categorical_accuracy"
METRIC_COLUMN = f"tags.{tags.METRIC}"
MODE_COLUMN = f"tags.{tags.METRIC_MODE}"
MODES = ("max", "min")
#: Keras names shown (and abbreviated in summary columns) as plain "accuracy".
ACCURACY_NAMES = ("sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "accuracy")

#: What the functions of experiments.analysis accept as the compared metric (None: the runs' tag).
MetricLike = str | MetricSpec | None


def base_name(metric: str) -> str:
    """The Keras base name of a metric key: ``test_loss`` -> ``loss``, ``acc`` -> ``accuracy``.

    A ``test_`` or ``val_`` prefix is dropped (the comparison always uses the
    test value and the val history of the base name).

    Args:
        metric: a base name or an MLflow key.
    """
    return keras_log_name(str(metric).strip().removeprefix("test_").removeprefix("val_"))


def metric_spec(metric: str | MetricSpec, mode: str | None = None) -> MetricSpec:
    """A :class:`MetricSpec` from a name (or spec) and an optional direction.

    Args:
        metric: base name, ``test_``/``val_`` key, or a spec.
        mode: ``"max"``/``"min"``; default: the spec's own mode, else
            :func:`experiments.config.metrics.default_mode` of the name.

    Raises:
        LayerlabError: ``mode`` is neither ``max`` nor ``min``.
    """
    if isinstance(metric, MetricSpec):
        name, mode = metric.name, mode or metric.mode
    else:
        name = base_name(metric)
    mode = mode or default_mode(name)
    if mode not in MODES:
        raise LayerlabError(
            "must be 'max' (higher is better) or 'min' (lower is better)",
            path="mode",
            value=mode,
            fix="pass --mode max or --mode min",
        )
    return MetricSpec(name=name, mode=mode)


def _distinct(runs: pd.DataFrame | None, column: str) -> list[str]:
    """The distinct non-empty string values of a tag column (sorted).

    Args:
        runs: runs frame, or ``None``.
        column: ``tags.<name>`` column.
    """
    if runs is None or column not in runs.columns:
        return []
    return sorted({v for v in runs[column] if isinstance(v, str) and v})


def resolve_metric(runs: pd.DataFrame | None, metric: MetricLike = None, mode: str | None = None) -> MetricSpec:
    """The metric to compare: the one given, else the runs' ``layerlab.metric`` tag, else the fallback.

    Args:
        runs: runs frame (its ``tags.layerlab.metric``/``metric_mode``
            columns are read only when ``metric`` is ``None``).
        metric: base name, ``test_``/``val_`` key, spec, or ``None``.
        mode: ``"max"``/``"min"``; default: the runs' ``layerlab.metric_mode``
            tag (for a tagged metric), else the name's usual direction.

    Raises:
        LayerlabError: the runs were tagged with different metrics or modes,
            or ``mode`` is invalid.
    """
    if metric is not None:
        return metric_spec(metric, mode)
    names = _distinct(runs, METRIC_COLUMN)
    if not names:
        return metric_spec(FALLBACK_METRIC, mode)
    if len(names) > 1:
        raise LayerlabError(
            f"the runs were judged by different metrics ({', '.join(names)})",
            path=tags.METRIC,
            fix="choose the one to compare with --metric (compare_sweep(metric=...))",
        )
    if mode is None:
        modes = _distinct(runs[runs[METRIC_COLUMN] == names[0]], MODE_COLUMN)
        if len(modes) > 1:
            raise LayerlabError(
                f"the runs disagree on the direction of {names[0]} ({', '.join(modes)})",
                path=tags.METRIC_MODE,
                fix="choose it with --mode max or --mode min",
            )
        mode = modes[0] if modes else None
    return metric_spec(names[0], mode)


def pretty_metric(key: str) -> str:
    """A readable metric key: ``test_sparse_categorical_accuracy`` -> ``test accuracy``, ``loss`` -> ``train loss``.

    Args:
        key: MLflow metric key.
    """
    name = key
    for long in ACCURACY_NAMES[:-1]:
        name = name.replace(long, "accuracy")
    if name.startswith("val_"):
        name = "val " + name[4:]
    elif name in ("accuracy", "loss"):
        name = "train " + name
    return name.replace("_", " ")
