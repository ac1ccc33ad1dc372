"""Pseudo-labels of one epoch, by the stage's `labels` rule:

- "mixed_modal": DM2C-style mixed-modal clustering: every image is placed in one modality space with the
  features of its translated view, and one clustering gives one label space across modalities;
- "hungarian": each modality is clustered on its own, then the clusters are matched one to one across
  modalities by their centroids (Hungarian, or Sinkhorn);
- "per_modality": cluster-contrast per modality: two separate label spaces, no cross-modal step;
- "true_ids": the true identities as labels: the supervised upper bound of the pipeline (a diagnostic).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cluster import (associate_per_modality, cluster_labels, jaccard_distance, mixed_modal_features,
                      relabel_consecutive)
from .train_config import ClusterConfig


@dataclass(frozen=True)
class PseudoLabels:
    """labels [N] int64, -1 for outliers.

    shared: one label space across modalities. Otherwise visible images hold labels
    0..num_vis_clusters-1 and infrared images num_vis_clusters.. (two spaces side by side).
    """

    labels: np.ndarray
    shared: bool
    num_vis_clusters: int = 0


def compute_pseudo_labels(rule: str, features: torch.Tensor, is_ir: np.ndarray, cluster: ClusterConfig,
                          view_features: torch.Tensor | None = None, true_ids: np.ndarray | None = None) -> PseudoLabels:
    """Cluster the training images' features [N, D] (and their translated views' [N, D]) by `rule`."""
    modalities = np.where(is_ir, "ir", "vis")
    if rule == "true_ids":
        return PseudoLabels(np.unique(true_ids, return_inverse=True)[1].astype(np.int64), shared=True)
    if rule == "mixed_modal":
        if view_features is None:
            raise ValueError("mixed_modal labels need the features of the translated views (set `translated`)")
        mixed = mixed_modal_features(features, view_features, is_ir, unify=cluster.unify, center=cluster.center)
        return PseudoLabels(relabel_consecutive(cluster_features(mixed, cluster, modalities)), shared=True)
    vis_labels = relabel_consecutive(cluster_features(features[~is_ir], cluster, modalities[~is_ir]))
    ir_labels = relabel_consecutive(cluster_features(features[is_ir], cluster, modalities[is_ir]))
    num_vis = int(vis_labels.max()) + 1 if (vis_labels >= 0).any() else 0
    side_by_side = np.full(len(is_ir), -1, dtype=np.int64)
    side_by_side[~is_ir] = vis_labels
    side_by_side[is_ir] = np.where(ir_labels >= 0, ir_labels + num_vis, -1)
    if rule == "per_modality":
        return PseudoLabels(side_by_side, shared=False, num_vis_clusters=num_vis)
    if rule == "hungarian":
        joint = associate_per_modality(features, side_by_side, is_ir, method=cluster.association)
        return PseudoLabels(relabel_consecutive(joint), shared=True)
    raise ValueError(f"unknown pseudo-label rule {rule!r}")


def cluster_features(features: torch.Tensor, cluster: ClusterConfig, modalities: np.ndarray) -> np.ndarray:
    """Labels [N] of features [N, D]: k-reciprocal Jaccard distances, then the configured clusterer."""
    distance = None if cluster.method == "kmeans" else jaccard_distance(features, k1=cluster.k1, k2=cluster.k2)
    return cluster_labels(distance, method=cluster.method, eps=cluster.eps, min_samples=cluster.min_samples,
                          features=features, num_clusters=cluster.num_clusters, modalities=modalities)
