"""MLflow internals used where MLflow has no public way; checked against mlflow 3.17.2
(``tests/test_adapters.py`` fails when they change).

* The tags ``mlflow.start_run`` adds to a new run (user, source name and
  type, git commit): ``mlflow.tracking.context.registry.resolve_tags``.  A
  fused job creates its replicas' runs with ``MlflowClient.create_run`` (one
  active fluent run per thread), which adds none of them.
* The store behind a client (``MlflowClient._tracking_client.store``), for
  the SQL store's bulk metric-history query that the client does not expose.
"""

from __future__ import annotations

from typing import Any


def start_run_tags(user_tags: dict[str, str]) -> dict[str, str]:
    """``user_tags`` plus the context tags ``mlflow.start_run`` would add to a new run."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags(user_tags)


def tracking_store(client: Any) -> Any:
    """The store object behind an ``mlflow.MlflowClient`` (e.g. ``SqlAlchemyStore``)."""
    return client._tracking_client.store
