"""Pseudo-labels, the shared parts methods compose (`reid.methods`):

- `per_modality_labels`: cluster-contrast per modality: each modality clustered apart, two label spaces side by
  side (visible 0..Cv-1, infrared Cv..Cv+Ci-1);
- `mixed_modal_labels`: DM2C-style mixed-modal clustering: every image placed in one modality space with the
  features of its translated view, one clustering, one label space across modalities;
- `modality_invariant_labels`: PCLHD's clustering of both modalities together with the modality-balanced query
  expansion of its k-reciprocal Jaccard distance;
- `true_id_labels`: the true identities (the supervised upper bound);
- `matched_labels`: one label space from per-modality clusters and a visible <-> infrared cluster matching.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cluster import cluster_labels, jaccard_distance, mixed_modal_features, relabel_consecutive
from .train_config import ClusterConfig


@dataclass(frozen=True)
class PseudoLabels:
    """labels [N] int64, -1 for outliers.

    shared: one label space across modalities. Otherwise visible images hold labels 0..num_vis_clusters-1 and
    infrared images num_vis_clusters.. (two spaces side by side).
    """

    labels: np.ndarray
    shared: bool
    num_vis_clusters: int = 0

    def of_modality(self, is_ir: np.ndarray, modality: str) -> np.ndarray:
        """The labels [n] of one modality's images in that modality's own space (0..C-1, -1 outliers)."""
        rows = is_ir if modality == "ir" else ~is_ir
        labels = self.labels[rows]
        if self.shared or modality == "vis":
            return labels
        return np.where(labels >= 0, labels - self.num_vis_clusters, -1)


def cluster_features(features: torch.Tensor, cluster: ClusterConfig, modalities: np.ndarray, *,
                     k1: int | None = None, k2: int | None = None, balance: bool = False) -> np.ndarray:
    """Labels [N] of features [N, D]: k-reciprocal Jaccard distances on the features as given, as the references
    compute them (k1, k2: the config's unless given; balance: PCLHD's modality-balanced query expansion), then the
    configured clusterer."""
    distance = None
    if cluster.method != "kmeans":
        distance = jaccard_distance(features, k1=k1 or cluster.k1, k2=k2 or cluster.k2, normalise=False,
                                    is_ir=(modalities == "ir") if balance else None)
    return cluster_labels(distance, method=cluster.method, eps=cluster.eps, min_samples=cluster.min_samples,
                          features=features, num_clusters=cluster.num_clusters, modalities=modalities)


def per_modality_labels(features: torch.Tensor, is_ir: np.ndarray, cluster: ClusterConfig) -> PseudoLabels:
    """Each modality of features [N, D] clustered on its own; labels side by side (visible first)."""
    modalities = np.where(is_ir, "ir", "vis")
    vis_labels = relabel_consecutive(cluster_features(features[~is_ir], cluster, modalities[~is_ir]))
    ir_labels = relabel_consecutive(cluster_features(features[is_ir], cluster, modalities[is_ir]))
    num_vis = int(vis_labels.max()) + 1 if (vis_labels >= 0).any() else 0
    side_by_side = np.full(len(is_ir), -1, dtype=np.int64)
    side_by_side[~is_ir] = vis_labels
    side_by_side[is_ir] = np.where(ir_labels >= 0, ir_labels + num_vis, -1)
    return PseudoLabels(side_by_side, shared=False, num_vis_clusters=num_vis)


def mixed_modal_labels(features: torch.Tensor, view_features: torch.Tensor, is_ir: np.ndarray,
                       cluster: ClusterConfig, *, k1: int | None = None, k2: int | None = None,
                       balance: bool = False) -> PseudoLabels:
    """One clustering of every image in the mixed-modal space of `cluster.unify` (features and their translated
    views' features, both [N, D]); k1, k2, balance: as `cluster_features`."""
    mixed = mixed_modal_features(features, view_features, is_ir, unify=cluster.unify, center=cluster.center)
    labels = cluster_features(mixed, cluster, np.where(is_ir, "ir", "vis"), k1=k1, k2=k2, balance=balance)
    return PseudoLabels(relabel_consecutive(labels), shared=True)


def modality_invariant_labels(features: torch.Tensor, is_ir: np.ndarray, cluster: ClusterConfig, *, k1: int,
                              k2: int) -> PseudoLabels:
    """PCLHD's "all" clustering: both modalities of features [N, D] together, Jaccard with k1 / k2 and the
    modality-balanced query expansion, then the configured clusterer."""
    labels = cluster_features(features, cluster, np.where(is_ir, "ir", "vis"), k1=k1, k2=k2, balance=True)
    return PseudoLabels(relabel_consecutive(labels), shared=True)


def true_id_labels(true_ids: np.ndarray) -> PseudoLabels:
    """The true identities as one label space (0..C-1)."""
    return PseudoLabels(np.unique(true_ids, return_inverse=True)[1].astype(np.int64), shared=True)


def matched_labels(pseudo: PseudoLabels, pairs: list[tuple[int, int]]) -> PseudoLabels:
    """One label space from per-modality labels (side by side) and (visible, infrared) cluster pairs: the
    connected components of the clusters linked by the pairs, relabelled 0..K-1."""
    parent = np.arange(int(pseudo.labels.max(initial=-1)) + 1)  # visible clusters, then infrared ones

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for vis, ir in pairs:
        parent[root(ir + pseudo.num_vis_clusters)] = root(vis)
    roots = np.array([root(node) for node in range(len(parent))], dtype=np.int64)
    joint = np.where(pseudo.labels >= 0, roots[np.maximum(pseudo.labels, 0)], -1)
    return PseudoLabels(relabel_consecutive(joint), shared=True)
