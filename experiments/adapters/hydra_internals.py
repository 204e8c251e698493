"""Hydra internals used where Hydra has no public way; checked against hydra-core 1.3.8 and
hydra-joblib-launcher 1.2.0 (``tests/test_adapters.py`` fails when they change).

* A failed job's exception: ``JobReturn.return_value`` raises it (and writes
  "Error executing job" to stderr), and the dataclass' constructor names the
  field ``_return_value``; reading and building a FAILED ``JobReturn`` needs
  that name.  Writing uses the public setter (``ret.return_value = ...``).
* The basic launcher's class path (``hydra._internal...``), compared with
  ``hydra.launcher._target_``, never imported.
* The basic sweeper's class path, and that Hydra instantiates the sweeper
  from ``hydra.sweeper`` right *after* the callbacks' ``on_multirun_start``
  (``hydra._internal.hydra.Hydra.multirun``): :func:`use_project_sweeper`
  puts the project's sweeper in the basic sweeper's place there. Not an
  ``override hydra/sweeper`` in ``conf/config.yaml``: Hydra keeps the *first*
  override of a group, so the primary config's would beat an experiment
  file's ``override /hydra/sweeper: optuna``; nor a ``hydra/sweeper/basic.yaml``
  of ours, which Hydra matches against its ConfigStore entry with a
  deprecation warning in every run.
* The joblib launcher's conversion of its config to ``joblib.Parallel``
  arguments (``hydra_joblib_launcher._core.process_joblib_cfg``), used by the
  warm-up so that its ``Parallel`` call has exactly the launcher's settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# hydra/sweeper=layerlab (conf/hydra/sweeper/layerlab.yaml): Hydra's basic sweep plus fused replicates and rounds.
PROJECT_SWEEPER = "hydra_plugins.layerlab_rounds.rounds_sweeper.LayerlabRoundsSweeper"


def use_project_sweeper(config) -> bool:
    """In ``on_multirun_start``: the basic sweeper (Hydra's default) becomes the project's; True when swapped.

    Its arguments are the basic sweeper's (``max_batch_size``, ``params``), so
    a sweep runs the same jobs, and ``sweep.fuse_replicates`` / ``sweep.until``
    work without ``hydra/sweeper=layerlab``. Any other sweeper is left alone.
    """
    from omegaconf import open_dict, read_write

    node = config.hydra.sweeper
    if node.get("_target_") != BASIC_SWEEPER:
        return False
    with read_write(node), open_dict(node):
        node._target_ = PROJECT_SWEEPER
    return True


def failed_return(overrides: Sequence[str], error: BaseException):
    """A FAILED ``JobReturn`` of a job whose ``error`` was caught outside Hydra's ``run_job``."""
    from hydra.core.utils import JobReturn, JobStatus

    return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error)


def job_error(ret) -> Any:
    """The exception a FAILED ``JobReturn`` carries (None for any other status), without raising it."""
    from hydra.core.utils import JobStatus

    return ret._return_value if ret.status == JobStatus.FAILED else None


def joblib_parallel_kwargs(settings: dict) -> dict:
    """``joblib.Parallel`` keyword arguments from the joblib launcher's config, as the launcher makes them."""
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    kwargs = {k: v for k, v in settings.items() if k != "_target_"}
    process_joblib_cfg(kwargs)
    kwargs["backend"] = "loky"  # as the launcher does (hydra_joblib_launcher._core.launch)
    return kwargs
