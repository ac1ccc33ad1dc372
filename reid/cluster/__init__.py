"""Pseudo-labels: faiss kNN, sparse k-reciprocal Jaccard distance, clusterers, DM2C-style mixed-modal
features, PGM's progressive graph matching and plain cross-modal associations. Works on feature tensors; needs
no model."""
from .association import (associate_hungarian, associate_per_modality, associate_sinkhorn, cluster_centroids,
                          merge_associated_labels)
from .clusterers import METHODS, ClusterReport, cluster_labels, relabel_consecutive, summarize_clusters
from .jaccard import jaccard_distance
from .matching import MATCHING_RULES, ClusterMatching, progressive_graph_matching
from .mixed_modal import UNIFY_MODES, mixed_modal_features
from .neighbors import knn, l2_normalize

__all__ = [
    "knn", "l2_normalize", "jaccard_distance", "cluster_labels", "summarize_clusters", "relabel_consecutive",
    "ClusterReport", "METHODS", "mixed_modal_features", "UNIFY_MODES", "cluster_centroids",
    "associate_hungarian", "associate_sinkhorn", "merge_associated_labels", "associate_per_modality",
    "progressive_graph_matching", "ClusterMatching", "MATCHING_RULES",
]
