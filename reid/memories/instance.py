"""`InstanceMemory`: PCLHD's dynamic prototypes (shijiangming1/PCLHD clustercontrast/models/cm.py `CM_Hard` with
`ClusterMemory(mode='CMhard')`'s `features_ema`; train_sysu.py `generate_random_features`).

- instances [K, C, D]: K instance features per cluster, K = 16; initialised with K members of each cluster drawn
  at random with replacement (the EMA teacher's features in PCLHD), L2-normalised;
- loss: per sample, over the K instances of every cluster, the least similar instance of its own cluster (the
  hardest positive) and the most similar instance of every other cluster (the hardest negatives), as logits / t,
  cross-entropy against the label;
- update, once per cluster c present in the batch: its K instances are replaced by K of its batch members drawn
  at random, without replacement when it has at least K members in the batch, with replacement otherwise (the
  reference tests `len(features) >= 16`, i.e. K at its K = 16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import PrototypeMemory, cross_entropy


class InstanceMemory(PrototypeMemory):
    """K instance features per cluster: `instances` [K, C, D] (`prototypes` is the same tensor as [K * C, D], the
    reference's layout: row k * C + c is instance k of cluster c). Draws use `generator` (None: torch's global)."""

    def __init__(self, num_features: int, num_clusters: int, *, num_instances: int = 16,
                 generator: torch.Generator | None = None, **options) -> None:
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        self.rows_per_cluster = int(num_instances)
        super().__init__(num_features, num_clusters, **options)
        self.num_instances, self.generator = int(num_instances), generator

    @classmethod
    def from_centroids(cls, centroids, **options):
        raise TypeError("an InstanceMemory holds instances, not centroids: build it with from_features(features, labels)")

    @property
    def instances(self) -> torch.Tensor:
        return self.prototypes.view(self.num_instances, self.num_clusters, self.num_features)

    def clone(self):
        """An independent copy; its generator a copy of this one's state (trying an update draws nothing here)."""
        copied = super().clone()
        if self.generator is not None:
            copied.generator = torch.Generator(device=self.generator.device)
            copied.generator.set_state(self.generator.get_state())
        return copied

    def _initial_prototypes(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rows = torch.stack([self._draw(torch.nonzero(labels == c).squeeze(1), replace=True)
                            for c in range(self.num_clusters)], dim=1)  # [K, C]
        return F.normalize(features[rows.reshape(-1)], dim=1)

    def loss(self, features: torch.Tensor, labels: torch.Tensor, *,
             gradient_prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """Hardest-positive / hardest-negative instance contrast of features [B, D] against labels [B]; scalar."""
        labels = self.checked_labels(features, labels)
        logits = self.logits(features, gradient_prototypes).view(-1, self.num_instances, self.num_clusters)  # [B, K, C]
        positives, negatives = logits.min(dim=1).values, logits.max(dim=1).values
        own = F.one_hot(labels.clamp_min(0).to(logits.device), self.num_clusters).bool()
        return cross_entropy(torch.where(own, positives, negatives), labels)

    def _update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        instances = self.instances
        for cluster in torch.unique(labels).tolist():  # the reference's loop, cluster by cluster
            members = torch.nonzero(labels == cluster).squeeze(1)
            instances[:, cluster] = features[self._draw(members, replace=len(members) < self.num_instances)]

    def _draw(self, members: torch.Tensor, replace: bool) -> torch.Tensor:
        """K of `members` [n] at random, with or without replacement, drawn with the memory's generator."""
        device = self.generator.device if self.generator is not None else torch.device("cpu")
        if replace:
            picks = torch.randint(len(members), (self.num_instances,), generator=self.generator, device=device)
        else:
            picks = torch.randperm(len(members), generator=self.generator, device=device)[:self.num_instances]
        return members[picks.to(members.device)]
