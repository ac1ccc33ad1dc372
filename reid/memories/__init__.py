"""Cluster memories, each usable on its own: built from features, `loss(features, labels)`, an explicit
`update(features, labels)` after the optimiser step. Each module names the reference file whose rules it follows.

| class | rules of |
|---|---|
| `ClusterMemory` | cluster-contrast's `CM` (per-instance momentum update) |
| `HardClusterMemory` | ADCA's / PGM's `CM_Hard` (the cluster's least similar batch member) |
| `HybridMemory` | PCLHD's `CM_Hybrid` (centroid and hard halves, margin loss) |
| `InstanceMemory` | PCLHD's dynamic prototypes (K instances per cluster, hardest positive / negatives) |
| `aggregate_cross_modal` | ADCA's cross-modality memory aggregation (CMA) |
"""
from .aggregation import aggregate_cross_modal, cross_modal_cluster_votes, greedy_cluster_pairs
from .base import IGNORE_LABEL, PrototypeMemory
from .centroid import ClusterMemory
from .hard import HardClusterMemory
from .hybrid import HybridMemory
from .instance import InstanceMemory

__all__ = ["PrototypeMemory", "ClusterMemory", "HardClusterMemory", "HybridMemory", "InstanceMemory",
           "aggregate_cross_modal", "cross_modal_cluster_votes", "greedy_cluster_pairs", "IGNORE_LABEL"]
