"""`HardClusterMemory`: the hard-sample memory of ADCA's and PGM's code (clustercontrast/models/cm.py `CM_Hard`;
PGM train_sysu.py stage 2, `use_hard=True`).

- init and loss: as `ClusterMemory` (normalised cluster means; ClusterNCE);
- update: once per cluster present in the batch, with its batch member least similar to the cluster's current
  prototype: p[c] <- normalize(momentum * p[c] + (1 - momentum) * f_hardest).
"""
from __future__ import annotations

import torch

from .base import argmin_per_label, cross_entropy, PrototypeMemory


class HardClusterMemory(PrototypeMemory):
    """One prototype per cluster, moved towards the cluster's hardest batch member: prototypes [C, D]."""

    def loss(self, features: torch.Tensor, labels: torch.Tensor, *,
             gradient_prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """ClusterNCE of features [B, D] against labels [B] (-1 rows ignored); scalar, graph to features only."""
        return cross_entropy(self.logits(features, gradient_prototypes), self.checked_labels(features, labels))

    def _update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        similarity = (features * self.prototypes[labels]).sum(dim=1)
        hardest = argmin_per_label(similarity, labels, self.num_clusters)
        present = hardest < features.shape[0]
        self.momentum_step(torch.nonzero(present).squeeze(1), features[hardest[present]])
