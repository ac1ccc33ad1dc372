"""`ClusterMemory`: cluster-contrast's memory (clustercontrast/models/cm.py `CM`, as ADCA, PGM and PCLHD copy it).

- init: the L2-normalised mean of each cluster's features;
- loss: cross-entropy of normalize(f) @ prototypes.T / temperature against the pseudo-labels (`ClusterNCE`);
- update: per instance, in batch order: p[y] <- normalize(momentum * p[y] + (1 - momentum) * f).
"""
from __future__ import annotations

import torch

from .base import PrototypeMemory, cross_entropy, occurrence_rounds


class ClusterMemory(PrototypeMemory):
    """One prototype per cluster: prototypes [C, D]."""

    def loss(self, features: torch.Tensor, labels: torch.Tensor, *,
             gradient_prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """ClusterNCE of features [B, D] against labels [B] (-1 rows ignored); scalar, graph to features only."""
        return cross_entropy(self.logits(features, gradient_prototypes), self.checked_labels(features, labels))

    def _update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Per-instance momentum updates in batch order: round r updates every label's r-th row at once (rows of
        different labels touch different prototypes, so this equals the reference's loop)."""
        occurrence = occurrence_rounds(labels)
        for round_ in range(int(occurrence.max()) + 1):
            rows = occurrence == round_
            self.momentum_step(labels[rows], features[rows])
