"""MLflow internals used where MLflow has no public way; checked against mlflow 3.17.2
(``tests/test_adapters.py`` fails when they change).

* The tags ``mlflow.start_run`` adds to a new run (user, source name and
  type, git commit): ``mlflow.tracking.context.registry.resolve_tags``.  A
  fused job creates its replicas' runs with ``MlflowClient.create_run`` (one
  active fluent run per thread), which adds none of them.
* The store behind a client (``MlflowClient._tracking_client.store``), for
  the SQL store's bulk metric-history query that the client does not expose.
* A run made the fluent API's active run of this thread for a block, neither
  started nor ended, or handed from one thread to another
  (``mlflow.tracking.fluent._active_run_stack``): a fused replica's
  description is logged by the writer thread while the fit runs, a solo
  job's run is closed by it while the next job trains, and
  ``mlflow.start_run`` + ``end_run`` would end the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def start_run_tags(user_tags: dict[str, str]) -> dict[str, str]:
    """``user_tags`` plus the context tags ``mlflow.start_run`` would add to a new run."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(user_tags)


def tracking_store(client: Any) -> Any:
    """The store object behind an ``mlflow.MlflowClient`` (e.g. ``SqlAlchemyStore``)."""
    return client._tracking_client.store


@contextlib.contextmanager
def active_in_this_thread(run_id: str, tracking_uri: str) -> Iterator[None]:
    """Within the block, the fluent ``mlflow.log_*`` calls of this thread log into run ``run_id``; the run's
    status is left as it is (``mlflow.start_run``/``end_run`` would end it)."""
    import mlflow
    from mlflow.tracking import fluent

    with adopted(fluent.ActiveRun(mlflow.MlflowClient(tracking_uri).get_run(run_id))):
        yield


def detach_active_run() -> Any:
    """This thread's active fluent run, taken off its stack without ending it (for :func:`adopted`)."""
    from mlflow.tracking import fluent

    return fluent._active_run_stack.get().pop()  # one list per thread


@contextlib.contextmanager
def adopted(active_run: Any) -> Iterator[None]:
    """``active_run`` (an ``mlflow.ActiveRun``) is this thread's active run within the block; ``mlflow.end_run``
    inside it ends and removes it, as for a run this thread started."""
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()  # one list per thread
    stack.append(active_run)
    try:
        yield
    finally:
        if stack and stack[-1] is active_run:
            stack.pop()
