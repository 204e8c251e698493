"""The MLflow store: experiments created once, runs found by tag queries, the code version.

``set_experiment`` loses races between processes (MLflow 3.17), so the
experiment id is looked up (or created) here and passed to every run.  Runs
are found by their tags (:mod:`experiments.tracking.tags`), which works the
same under every Hydra launcher.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterable

from experiments.errors import TrackingError
from experiments.tracking import tags
from experiments.tracking.uri import PROJECT_ROOT, check_artifact_location, default_artifact_root


def ensure_experiment(uri: str, name: str, artifact_root: str | None = None) -> str:
    """The id of experiment ``name``, creating it (once) if needed.

    Safe against another process creating it at the same moment: the loser
    of the race looks the experiment up again instead of failing.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(f"the MLflow experiment {name!r} is deleted (in the trash)", path="tracking.experiment",
                                fix=f"restore it (`mlflow experiments restore --experiment-id {exp.experiment_id}`) "
                                    "or choose another tracking.experiment")
        return exp.experiment_id
    location = artifact_root
    if location is None and not uri.startswith(("http://", "https://")):
        location = default_artifact_root(name, uri)
    if location:
        check_artifact_location(location)
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        for _ in range(20):  # someone else created it meanwhile
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            time.sleep(0.25)
        raise


def git_state(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Commit and dirty flag of the project checkout (empty outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {tags.MLFLOW_GIT_COMMIT: commit, tags.GIT_COMMIT: commit,
            tags.GIT_DIRTY: str(bool(dirty)).lower()}


def find_runs(uri: str, experiment_id: str, filter_string: str, statuses: Iterable[str] | None = None,
              max_results: int = 1000) -> list:
    """Runs of one experiment matching an MLflow filter, newest first."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([experiment_id], filter_string=filter_string, max_results=max_results,
                              order_by=["attributes.start_time DESC"])
    if statuses:
        runs = [r for r in runs if r.info.status in set(statuses)]
    return runs




def find_parent(uri: str, experiment_id: str, sweep_dir: str):
    """The RUNNING parent run of the sweep writing to ``sweep_dir``, or None.

    Every job of a sweep calls this with its own ``hydra.sweep.dir``: a tag
    query works the same for jobs in the launching process, in joblib or Ray
    workers and in SLURM jobs, whatever environment they inherited.
    """
    runs = find_runs(uri, experiment_id, f"tags.`{tags.ROLE}` = '{tags.ROLE_PARENT}' and "
                                         f"tags.`{tags.SWEEP_DIR_RAW}` = '{sweep_dir}'", statuses=["RUNNING"])
    return runs[0] if runs else None
