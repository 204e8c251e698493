"""The metric a run is judged by, derived from the config in one place.

The final line of a run, the best-checkpoint monitor, the statistical
comparison of a sweep and the tags that let the analysis find it all use
:func:`compared_metric`, never a hard-coded name.  By default it is the first
of ``training.metrics`` (``loss`` when the list is empty); ``sweep.metric``
and ``sweep.mode`` choose another one.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import OmegaConf

# Substrings of Keras metric names for which lower is better.
_LOWER_IS_BETTER = ("loss", "error", "crossentropy", "hinge", "divergence", "mae", "mse", "mape", "msle")


@dataclass(frozen=True)
class MetricSpec:
    """A Keras metric name and its direction.

    Args:
        name: the name Keras logs it under in ``history`` (``sparse_categorical_accuracy``, ``loss``).
        mode: ``"max"`` when higher is better, ``"min"`` when lower is.
    """

    name: str
    mode: str = "max"

    @property
    def val(self) -> str:
        """The validation key: what checkpoints, early stopping and the best run use."""
        return f"val_{self.name}"

    @property
    def test(self) -> str:
        """The held-out test key: what a sweep's comparison reports."""
        return f"test_{self.name}"

    @property
    def higher_is_better(self) -> bool:
        return self.mode == "max"

    @property
    def default_target(self) -> float | None:
        """The "epochs to reach" value when none is given: 0.9 of a higher-is-better metric (an accuracy); none
        for a lower-is-better one, whose values (a loss, an error in the target's units) have no common scale."""
        return 0.9 if self.higher_is_better else None

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


def default_mode(name: str) -> str:
    """``min`` for losses and errors, ``max`` for everything else (accuracy, AUC, precision, ...)."""
    base = name.removeprefix("val_").removeprefix("test_").removeprefix("train_").lower()
    return "min" if any(s in base for s in _LOWER_IS_BETTER) else "max"


def keras_log_name(metric: str) -> str:
    """The name Keras 3 logs a metric string under (``acc`` -> ``accuracy``; others unchanged)."""
    return {"acc": "accuracy"}.get(metric, metric)


def judged_metric(metric: str | None, mode: str | None, training_metrics) -> MetricSpec:
    """The one rule: ``sweep.metric``/``sweep.mode`` if set, else the first of ``training.metrics`` (``loss``)."""
    chosen = metric
    if not chosen:
        chosen = str(training_metrics[0]) if training_metrics else "loss"
    name = keras_log_name(str(chosen)).removeprefix("val_").removeprefix("test_")
    return MetricSpec(name=name, mode=str(mode or default_mode(name)))


def compared_metric(cfg) -> MetricSpec:
    """The metric of the raw composed ``cfg`` (a sweep's parent, before any job validated it);
    a job reads ``JobConfig.metric``."""
    metrics = OmegaConf.select(cfg, "training.metrics", default=None) or []
    return judged_metric(
        OmegaConf.select(cfg, "sweep.metric", default=None),
        OmegaConf.select(cfg, "sweep.mode", default=None),
        list(metrics),
    )
