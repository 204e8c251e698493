"""Fused replicates: R seeds of one model trained in one fit, with a result per replica.

``engine`` (:class:`FusedReplicas`, the public API the sweep integration calls),
``callbacks`` (each replica's callbacks, logs and stop), ``loss`` (a replica's
``loss`` as a solo fit computes it), ``optimizer`` (a replica's share of the
fused optimizer's state), ``stack`` (the replicas as one stack; :func:`choose_layout`: stacked or branches).
"""

from experiments.training.fused.engine import FusedReplicas, ReplicaResult, output_name
from experiments.training.fused.stack import choose_layout

__all__ = ["FusedReplicas", "ReplicaResult", "choose_layout", "output_name"]
