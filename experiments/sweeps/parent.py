"""A sweep that continues in an earlier sweep's parent run (a continued Optuna study).

The callback opens a fresh parent for every sweep (:mod:`experiments.sweeps.callback`).
When the sweep turns out to continue earlier work, :func:`continue_in` moves it
into the earlier parent: that run is reopened for this process (identity and
heartbeat first, then RUNNING: :func:`experiments.tracking.store.reopen_run`),
takes the new sweep folder (how the jobs find it) and the new command, and beats
from here; the fresh parent is deleted.
"""

from __future__ import annotations

from experiments.sweeps.state import SweepState
from experiments.tracking import tags
from experiments.tracking.heartbeat import Heartbeat
from experiments.tracking.store import reopen_run

# Tags of the fresh parent that the reopened one takes: how this sweep's jobs find it, and what completes it.
_TAKEN = (tags.SWEEP_DIR, tags.SWEEP_DIR_RAW, tags.OVERRIDES, tags.COMPLETING_COMMAND)


def continue_in(state: SweepState, earlier_run_id: str) -> None:
    """The active sweep's parent becomes ``earlier_run_id``, reopened RUNNING with this process's heartbeat.

    Called before the sweep's first job starts, so every job finds the reopened parent.
    """
    import mlflow

    client = mlflow.MlflowClient(state.uri)
    fresh_id = state.parent_run_id
    if state.heartbeat is not None:
        state.heartbeat.stop()
        state.heartbeat = None
    fresh = client.get_run(fresh_id)
    reopen_run(state.uri, earlier_run_id)
    for key in _TAKEN:
        if key in fresh.data.tags:
            client.set_tag(earlier_run_id, key, fresh.data.tags[key])
    state.heartbeat = Heartbeat(state.uri, earlier_run_id).start()
    state.parent_run_id = earlier_run_id
    state.sweep_id = client.get_run(earlier_run_id).data.tags.get(tags.SWEEP_ID, state.sweep_id)
    client.set_terminated(fresh_id, "KILLED")
    client.delete_run(fresh_id)
