"""`HybridMemory`: PCLHD's centroid + hard prototype memory (shijiangming1/PCLHD clustercontrast/models/cm.py
`CM_Hybrid` and `ClusterMemory(mode='CMhybrid')`, also the encoder path of `mode='CMhard'`).

- prototypes [2C, D]: the centroid half [C] then the hard half [C]; both initialised to the normalised cluster
  mean (train_sysu.py: `F.normalize(cluster_features.repeat(2, 1))`);
- loss: with logits of both halves, 0.5 * (CE(hard) + relu(CE(centroid) - margin)), margin 0.2;
- update, once per cluster c present in the batch, its members f_i (normalised):
  s_i = f_i . centroid_c (before the centroid moves);
  centroid_c <- normalize(momentum * centroid_c + (1 - momentum) * mean_i f_i);
  hard_c <- normalize(momentum * hard_c + (1 - momentum) * f_argmin s_i).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import PrototypeMemory, argmin_per_label, cluster_means, cross_entropy


class HybridMemory(PrototypeMemory):
    """Centroid and hard prototypes per cluster: prototypes [2C, D] (`centroids` [C, D], `hard` [C, D])."""

    rows_per_cluster = 2

    def __init__(self, num_features: int, num_clusters: int, *, margin: float = 0.2, **options) -> None:
        super().__init__(num_features, num_clusters, **options)
        self.margin = float(margin)

    @property
    def centroids(self) -> torch.Tensor:
        return self.prototypes[:self.num_clusters]

    @property
    def hard(self) -> torch.Tensor:
        return self.prototypes[self.num_clusters:]

    def loss(self, features: torch.Tensor, labels: torch.Tensor, *,
             gradient_prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """0.5 * (CE(hard) + relu(CE(centroid) - margin)) of features [B, D] against labels [B]; scalar."""
        labels = self.checked_labels(features, labels)
        logits = self.logits(features, gradient_prototypes)
        centroid, hard = logits[:, :self.num_clusters], logits[:, self.num_clusters:]
        return 0.5 * (cross_entropy(hard, labels) + F.relu(cross_entropy(centroid, labels) - self.margin))

    def _update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        similarity = (features * self.centroids[labels]).sum(dim=1)
        hardest = argmin_per_label(similarity, labels, self.num_clusters)
        present = torch.nonzero(hardest < features.shape[0]).squeeze(1)
        means = cluster_means(features, labels, self.num_clusters)[present]
        self.momentum_step(present, means)
        self.momentum_step(present + self.num_clusters, features[hardest[present]])
