"""The study in MLflow: the sweep's parent run is the study's (one per study, reused when it is continued).

Params: the search space, sampler, pruner; metrics: ``best_value`` (best so
far) and ``trial_value`` per trial number; tags: the study, the best trial;
artifacts ``optuna/``: optimisation history, parameter importances and slice
plot (PNG); the description: the best trial, its overrides and the command
that reruns it alone.  Each trial's own run is a child of this parent (found by
the sweep folder, :mod:`experiments.sweeps.callback`), tagged ``trial_number``.
"""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path

from experiments.config.overrides import parse_overrides
from experiments.sweeps import current_sweep
from experiments.sweeps.parent import continue_in
from experiments.tracking import tags
from experiments.tracking.redaction import redact
from hydra_plugins.layerlab_optuna._space import describe, format_value

log = logging.getLogger(__name__)


class StudyParent:
    """The active sweep's parent run as the study's record (a no-op without one: dry run)."""

    def __init__(self, state, client, fixed: list[str]):
        self.state, self.client, self.fixed = state, client, fixed

    @classmethod
    def attach(cls, study, storage: str, space: dict, sampler: dict, pruner: dict, fixed: list[str]) -> StudyParent:
        import mlflow

        state = current_sweep().state
        if state is None or state.parent_run_id is None:
            return cls(None, None, fixed)
        client = mlflow.MlflowClient(state.uri)
        state.compare = False  # group statistics over sampled points say nothing; the study's plots do
        safe_storage = redact(storage)
        earlier = [
            r
            for r in client.search_runs(
                [state.experiment_id],
                filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_PARENT}' and "
                f"tags.`{tags.STUDY}` = '{study.study_name}'",
                max_results=50,
            )
            if r.data.tags.get(tags.STUDY_STORAGE) == safe_storage and r.info.run_id != state.parent_run_id
        ]
        if earlier:  # a continued study: its parent takes this sweep's jobs
            continue_in(state, earlier[0].info.run_id)
            print(f"layerlab: study {study.study_name!r} continues in its parent run {state.parent_run_id}", flush=True)
        else:
            client.set_tag(state.parent_run_id, tags.STUDY, study.study_name)
            client.set_tag(state.parent_run_id, tags.STUDY_STORAGE, safe_storage)
            client.set_tag(state.parent_run_id, "mlflow.runName", f"study {study.study_name}")
            params = {f"space.{k}": v for k, v in describe(space).items()}
            params.update({f"sampler.{k}": v for k, v in sampler.items()})
            params.update({f"pruner.{k}": v for k, v in pruner.items()})
            params["direction"] = study.direction.name.lower()
            for key, value in params.items():
                try:
                    client.log_param(state.parent_run_id, key, str(value)[:6000])
                except Exception as exc:  # a continued study with other settings: the first ones stay
                    log.debug("param %s of the study's parent kept: %r", key, exc)
        return cls(state, client, fixed)

    def after_batch(self, study, batch: list) -> None:
        """``trial_value`` and ``best_value`` (best so far) at each finished trial's number."""
        if self.state is None:
            return
        from optuna.trial import TrialState

        numbers = {t.number for t in batch}
        best = None
        maximize = study.direction.name == "MAXIMIZE"
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state == TrialState.COMPLETE and t.value is not None:
                if best is None or (t.value > best if maximize else t.value < best):
                    best = t.value
            if t.number in numbers:
                if t.state == TrialState.COMPLETE:
                    self.client.log_metric(self.state.parent_run_id, "trial_value", t.value, step=t.number)
                if best is not None:
                    self.client.log_metric(self.state.parent_run_id, "best_value", best, step=t.number)

    def finish(self, study, metric_key: str) -> None:
        """Counts, the best trial, the plots and the description; printed too."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        count = {
            s: sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        }
        line = (
            f"layerlab: study {study.study_name!r}: {len(trials)} trials: {count[TrialState.COMPLETE]} complete, "
            f"{count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed"
        )
        best = study.best_trial if count[TrialState.COMPLETE] else None
        words = [*self.fixed, *(f"{k}={format_value(v)}" for k, v in (best.params.items() if best else []))]
        if any(o.key == "experiment" for o in parse_overrides(self.fixed)):
            words.append("hydra.mode=RUN")  # an experiment file that sets MULTIRUN would search again
        rerun = "python runner.py " + " ".join(shlex.quote(w) for w in words)
        if best is not None:
            line += (
                f"\nlayerlab: best trial {best.number}: {metric_key}={best.value:.4f} with "
                + " ".join(f"{k}={format_value(v)}" for k, v in best.params.items())
                + f"\n  rerun it alone: {rerun}"
            )
        print(line, flush=True)
        if self.state is None:
            return
        pid = self.state.parent_run_id
        for state, n in count.items():
            self.client.log_metric(pid, f"trials_{state.name.lower()}", n)
        if best is None:
            self.state.note = f"## Study {study.study_name}\n\n{line.splitlines()[0][10:]}; no trial completed.\n"
            return
        self.client.set_tag(pid, tags.BEST_TRIAL, str(best.number))
        self.client.log_metric(pid, f"best_{metric_key}", best.value)
        overrides = "\n".join(f"- `{k}={format_value(v)}`" for k, v in best.params.items())
        self.state.note = (
            f"## Study {study.study_name}\n\n{line.splitlines()[0][10:]} "
            f"({study.direction.name.lower()} {metric_key}).\n\n**Best trial {best.number}**: "
            f"{metric_key}={best.value:.4f}, drawn:\n\n{overrides}\n\nRerun it alone:\n\n```\n{rerun}\n```\n\n"
            "Plots: the artifacts `optuna/` of this run.\n"
        )
        self._plots(study, Path(self.state.sweep_dir) / "optuna")

    def _plots(self, study, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as ovm

        for name, draw in (
            ("optimization_history", ovm.plot_optimization_history),
            ("param_importances", ovm.plot_param_importances),
            ("slice", ovm.plot_slice),
        ):
            try:
                with warnings.catch_warnings():  # "experimental" since Optuna 2.2; layout hints
                    warnings.simplefilter("ignore")
                    axes = draw(study)
                first = axes.flat[0] if hasattr(axes, "flat") else axes
                fig = first.figure
                fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 5))
                fig.savefig(out / f"{name}.png", dpi=100)
                plt.close(fig)
                self.client.log_artifact(self.state.parent_run_id, str(out / f"{name}.png"), "optuna")
            except Exception as exc:  # e.g. importances need two completed trials
                print(f"layerlab: study plot {name} skipped: {type(exc).__name__}: {exc}", flush=True)
