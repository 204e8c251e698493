"""Compare the groups of a sweep from its MLflow runs, with honest statistics.

Answers questions such as "is the abs activation better than ReLU?" from the
job runs of one sweep: per-group means with 95% confidence intervals, Welch
and (when the seeds match) paired t-tests, mean learning curves with a band,
and a markdown/CSV report that also lists the failed runs and how to rerun
them.  The compared metric is the one the runs were judged by (their
``layerlab.metric`` tag) unless one is given.

Run it from the shell::

    python -m experiments.compare EXPERIMENT [--sweep-id ID] [--tracking-uri URI]
        [--out DIR] [--metric accuracy|test_loss|...] [--mode max|min] [--target 0.9]

or from Python (the sweep calls this at the end of every sweep)::

    result = compare_sweep(tracking_uri, "mnist", sweep_id="2024-05-01_12-00-00")
    result["markdown"], result["csv"], result["plots"], result["table"]

The parts: :mod:`~experiments.analysis.runs` (loading),
:mod:`~experiments.analysis.metric` (which metric),
:mod:`~experiments.analysis.groups` (which groups),
:mod:`~experiments.analysis.summarize` and :mod:`~experiments.analysis.stats`
(the numbers), :mod:`~experiments.analysis.curves` (plots) and
:mod:`~experiments.analysis.report` (text).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.analysis.curves import plot_curves
from experiments.analysis.factor_report import description_markdown, render_factor_table
from experiments.analysis.factors import all_verdicts, factor_tests, interaction_tests
from experiments.analysis.formatting import terminal_width
from experiments.analysis.groups import SEED_KEY
from experiments.analysis.metric import FALLBACK_METRIC, MetricLike, pretty_metric, resolve_metric
from experiments.analysis.report import render_table, write_report
from experiments.analysis.runs import load_runs, not_finished
from experiments.analysis.stats import pairwise_tests
from experiments.analysis.summarize import summarize
from experiments.errors import LayerlabError
from experiments.process import debug_enabled
from experiments.tracking import tags

__all__ = ["compare_sweep", "comparison_frames", "main"]


def compare_sweep(
    tracking_uri: str | None,
    experiment: str,
    sweep_id: str | None = None,
    out_dir: str | Path = "comparison",
    target: float | None | str = "auto",
    *,
    metric: MetricLike = None,
    mode: str | None = None,
    alpha: float = 0.05,
    replicate_key: str = SEED_KEY,
    compare_by: Sequence[str] | None = None,
    all_pairs: bool = False,
    min_effect: float | None = None,
    equivalence_margin: float | None = None,
) -> dict[str, Any]:
    """Load a sweep's runs, summarize, compare along each factor, plot and write the report.

    Args:
        tracking_uri: MLflow tracking URI (``None``: ``$MLFLOW_TRACKING_URI``,
            else the project's ``mlflow.db``; see
            :func:`experiments.tracking.uri.resolve_uri`).
        experiment: experiment name.
        sweep_id: the ``layerlab.sweep_id`` tag; ``None`` compares all job runs.
        out_dir: folder for the report and plots.
        target: value of the ``val_<metric>`` history for "epochs to target"
            (``None``: no such column; ``"auto"``: 0.9 for a higher-is-better metric, none for a lower-is-better one).
        metric: the metric to compare: a Keras base name (``accuracy``,
            ``sparse_categorical_accuracy``, ``loss``) or its ``test_`` key;
            the groups are compared on ``test_<metric>``.  ``None``: the runs'
            ``layerlab.metric`` tag, else ``sparse_categorical_accuracy``.
        mode: ``"max"`` or ``"min"``; ``None``: the runs'
            ``layerlab.metric_mode`` tag, else the metric's usual direction.
        alpha: significance level.
        replicate_key: the swept key whose values are replicates (``sweep.replicate_key``).
        compare_by: the factors to compare along (``sweep.compare_by``; ``None``: every swept key).
        all_pairs: also test every pair of groups (``sweep.all_pairs``), Holm over all pairs.
        min_effect: the difference worth detecting (``sweep.min_effect``): every comparison says how
            many replicates would detect it with 80% power (the detectable difference is always given).
        equivalence_margin: ``sweep.equivalence_margin``: a TOST per comparison, "equivalent within ±d".

    Returns:
        ``markdown``, ``csv``, ``tests_csv`` (Paths), ``plots`` (list of
        Paths), ``table`` (terminal text: groups, then the factor comparisons),
        ``verdicts`` (list of str: factors, interactions, then all pairs),
        ``description`` (short Markdown for the sweep's parent run),
        ``metric`` (the :class:`~experiments.config.metrics.MetricSpec`
        compared), and the frames ``runs``, ``summary``, ``tests`` (factor
        comparisons), ``interactions``, ``pairs`` (``None`` unless
        ``all_pairs``), ``failed``.

    Raises:
        LayerlabError: no runs, none of them finished, or an invalid metric choice.
    """
    runs = load_runs(tracking_uri, experiment, sweep_id, metric=metric, mode=mode)
    frames = comparison_frames(
        runs,
        target,
        metric=metric,
        mode=mode,
        alpha=alpha,
        replicate_key=replicate_key,
        compare_by=compare_by,
        all_pairs=all_pairs,
        min_effect=min_effect,
        equivalence_margin=equivalence_margin,
    )
    spec, summary, tests = frames["metric"], frames["summary"], frames["tests"]
    interactions, pairs = frames["interactions"], frames["pairs"]
    plots = plot_curves(runs, out_dir, spec, replicate_key=replicate_key)
    failed = not_finished(runs)
    title = f"Comparison: experiment {experiment!r}" + (f", sweep {sweep_id!r}" if sweep_id else "")
    paths = write_report(
        summary, tests, failed, out_dir, plots=plots, title=title, interactions=interactions, pairs=pairs
    )
    width = terminal_width()  # the table is printed on this process's stdout: fitted to a terminal's width
    factor_text = render_factor_table(tests, interactions, width)
    return {
        **paths,
        "plots": plots,
        "table": render_table(summary, width) + (f"\n\n{factor_text}" if factor_text else ""),
        "verdicts": all_verdicts(tests, interactions, pairs),
        "description": description_markdown(summary, tests, interactions, title=title),
        "metric": spec,
        "runs": runs,
        "summary": summary,
        "tests": tests,
        "interactions": interactions,
        "pairs": pairs,
        "failed": failed,
    }


def comparison_frames(
    runs: Any,
    target: float | None | str = 0.9,
    *,
    metric: MetricLike = None,
    mode: str | None = None,
    alpha: float = 0.05,
    replicate_key: str = SEED_KEY,
    compare_by: Sequence[str] | None = None,
    all_pairs: bool = False,
    min_effect: float | None = None,
    equivalence_margin: float | None = None,
) -> dict[str, Any]:
    """The numbers of :func:`compare_sweep` from a loaded runs frame, nothing written.

    Args:
        runs: the frame of :func:`~experiments.analysis.runs.load_runs`.
        target, metric, mode, alpha, replicate_key, compare_by, all_pairs, min_effect, equivalence_margin:
            as in :func:`compare_sweep`.

    Returns:
        ``metric`` (the MetricSpec compared) and the frames ``summary``, ``tests``, ``interactions``, ``pairs``
        (``None`` unless ``all_pairs``).
    """
    spec = resolve_metric(runs, metric, mode)
    if isinstance(target, str):  # "auto"
        target = spec.default_target
    summary = summarize(runs, target, metric=spec, replicate_key=replicate_key)
    options = {"alpha": alpha, "replicate_key": replicate_key, "min_effect": min_effect, "margin": equivalence_margin}
    return {
        "metric": spec,
        "summary": summary,
        "tests": factor_tests(runs, spec, compare_by=compare_by, **options),
        "interactions": interaction_tests(runs, spec, compare_by=compare_by, **options),
        "pairs": pairwise_tests(runs, spec, **options) if all_pairs else None,
    }


def _positive(text: str) -> float:
    """A positive number for ``--min-effect`` / ``--equivalence-margin`` (argparse reports the error)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number in the metric's units, e.g. 0.005 (got {text})")
    return value


def _parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m experiments.compare``."""
    p = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Compare the groups of a sweep (e.g. abs vs relu) from MLflow runs: "
        "means with 95% CIs, Welch/paired t-tests, learning curves, a markdown report.",
    )
    p.add_argument("experiment", help="MLflow experiment name")
    p.add_argument("--sweep-id", default=None, help=f"tag {tags.SWEEP_ID} of the sweep (default: all job runs)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the project's mlflow.db; "
        "a relative sqlite path is taken from the project root)",
    )
    p.add_argument("--out", default="comparison", help="output folder (default: ./comparison)")
    p.add_argument(
        "--metric",
        default=None,
        help="metric to compare, as a Keras name (accuracy, loss) or its test_ key (test_loss); "
        f"default: the runs' {tags.METRIC} tag, else {FALLBACK_METRIC}",
    )
    p.add_argument(
        "--mode",
        choices=("max", "min"),
        default=None,
        help=f"max: higher is better, min: lower is (default: the runs' {tags.METRIC_MODE} tag, "
        "else from the metric's name)",
    )
    p.add_argument(
        "--target",
        "--target-accuracy",
        dest="target",
        type=float,
        default=None,
        help="value of the val metric for 'epochs to target' (default: 0.9 for a higher-is-better metric, "
        "none for a lower-is-better one)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    p.add_argument(
        "--replicate-key",
        default=SEED_KEY,
        help="the swept key whose values are replicates, paired across groups (default: seed)",
    )
    p.add_argument(
        "--compare-by",
        action="append",
        default=None,
        metavar="KEY",
        help="compare along this swept key only (repeatable; default: every swept key)",
    )
    p.add_argument("--all-pairs", action="store_true", help="also test every pair of groups (Holm over all pairs)")
    p.add_argument(
        "--min-effect",
        type=_positive,
        default=None,
        metavar="D",
        help="the difference worth detecting: say how many replicates would detect it with 80%% power",
    )
    p.add_argument(
        "--equivalence-margin",
        type=_positive,
        default=None,
        metavar="D",
        help="also test equivalence within ±D (two one-sided tests, Holm per family)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 2 on a :class:`LayerlabError` (message on stderr, no
        traceback unless ``LAYERLAB_DEBUG=1``).
    """
    args = _parser().parse_args(argv)
    try:
        result = compare_sweep(
            args.tracking_uri,
            args.experiment,
            sweep_id=args.sweep_id,
            out_dir=args.out,
            target="auto" if args.target is None else args.target,
            metric=args.metric,
            mode=args.mode,
            alpha=args.alpha,
            replicate_key=args.replicate_key,
            compare_by=args.compare_by,
            all_pairs=args.all_pairs,
            min_effect=args.min_effect,
            equivalence_margin=args.equivalence_margin,
        )
    except LayerlabError as exc:
        if debug_enabled():
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    spec = result["metric"]
    print(f"Compared: {pretty_metric(spec.test)} ({'higher' if spec.higher_is_better else 'lower'} is better)")
    print(result["table"])
    print()
    for verdict in result["verdicts"] or ["Only one group: nothing to compare."]:
        print(f"- {verdict}")
    if len(result["failed"]):
        print(f"\n{len(result['failed'])} run(s) did not finish and were excluded; rerun commands are in the report.")
    print(f"\nReport: {result['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
