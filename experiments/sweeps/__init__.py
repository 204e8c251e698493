"""Multirun support: the Hydra callback, the sweep's parent run and summary, and the sweep context.

:func:`current_sweep` is the public way for the launcher and sweeper plugins
(``hydra_plugins/``) to reach the sweep running in their process
(:class:`SweepContext`: its parent run, store, ledger folder and launcher).
"""

from experiments.sweeps.context import SweepContext, current_sweep

__all__ = ["SweepContext", "current_sweep"]
