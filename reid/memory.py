"""Cluster memory: one L2-normalised prototype per pseudo-label cluster, contrasted against by ClusterNCE.

`ClusterMemory` is a plain class, not an nn.Module: its prototypes are constants to autograd (no
parameters, never in the model's state dict, no hidden autograd.Function). The training step is

    loss = memory.loss(features, labels)          # cluster NCE, graph only to `features`
    loss.backward(); optimizer.step()
    memory.update(features, labels)               # explicit, no_grad, detached features

Prototype kinds (initialisation in `from_features`, update in `update`):
- "centroid": cluster-contrast; init the normalised cluster mean, momentum update per instance.
- "hard": PCLHD's hard prototype; init the member least similar to its centroid, update with the
  batch member least similar to the prototype (cluster-contrast's CM_Hard).
- "dynamic": PCLHD's dynamic prototype; init and update with a random member, drawn with `generator`.

Momentum follows cluster-contrast exactly: p <- momentum * p + (1 - momentum) * f, then p <- p / ||p||,
so `momentum` weights the OLD prototype (0.1 = mostly the new feature).
Features are expected L2-normalised (the model's output); logits are computed in float32.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from .losses import IGNORE_LABEL, check_labels, cluster_nce

PROTOTYPES = ("centroid", "hard", "dynamic")


class ClusterMemory:
    """Prototypes [C, D] float32 on `device`, L2-normalised rows, requires_grad False.

    A fresh memory holds zero prototypes; fill it with `initialise` (or build it with `from_features`)
    or `load_state_dict`. `generator` drives the "dynamic" draws (None: torch's global RNG).
    """

    def __init__(self, num_features: int, num_clusters: int, *, temperature: float = 0.05, momentum: float = 0.1,
                 prototype: str = "centroid", device: str | torch.device = "cpu",
                 generator: torch.Generator | None = None) -> None:
        if num_features < 1 or num_clusters < 1:
            raise ValueError(f"num_features and num_clusters must be >= 1, got {num_features} and {num_clusters}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1] (weight of the old prototype), got {momentum}")
        if prototype not in PROTOTYPES:
            raise ValueError(f"prototype must be one of {PROTOTYPES}, got {prototype!r}")
        self.num_features, self.num_clusters = int(num_features), int(num_clusters)
        self.temperature, self.momentum, self.prototype = float(temperature), float(momentum), prototype
        self.device = torch.device(device)
        self.generator = generator
        self.prototypes = torch.zeros(self.num_clusters, self.num_features, device=self.device)

    @classmethod
    def from_features(cls, features: torch.Tensor, labels, *, prototype: str = "centroid", temperature: float = 0.05,
                      momentum: float = 0.1, device: str | torch.device | None = None,
                      generator: torch.Generator | None = None) -> ClusterMemory:
        """Memory initialised from features [N, D] and cluster labels [N] in 0..C-1 (-1 = outlier, ignored).

        device: where the prototypes live; None = the features' device.
        """
        features = _as_features(features)
        labels = _cluster_labels(labels, features.shape[0])
        memory = cls(features.shape[1], int(labels.max()) + 1, temperature=temperature, momentum=momentum,
                     prototype=prototype, device=features.device if device is None else device, generator=generator)
        return memory.initialise(features, labels)

    @torch.no_grad()
    def initialise(self, features: torch.Tensor, labels) -> ClusterMemory:
        """Set the prototypes from features [N, D] and labels [N] (0..C-1, -1 ignored) by kind; returns self."""
        features = _as_features(features).detach().to(self.device, torch.float32)
        labels = _cluster_labels(labels, features.shape[0]).to(self.device)
        if features.shape[1] != self.num_features or int(labels.max()) + 1 != self.num_clusters:
            raise ValueError(f"memory holds {self.num_clusters} clusters of {self.num_features} features, got "
                             f"{int(labels.max()) + 1} clusters of {features.shape[1]}")
        valid = labels != IGNORE_LABEL
        features, labels = features[valid], labels[valid]
        centroids = F.normalize(_cluster_means(features, labels, self.num_clusters), dim=1)
        if self.prototype == "centroid":
            self.prototypes = centroids
            return self
        if self.prototype == "hard":
            scores = (F.normalize(features, dim=1) * centroids[labels]).sum(dim=1)
        else:
            scores = self._random_scores(features.shape[0])
        rows = _argmin_per_label(scores, labels, self.num_clusters)
        self.prototypes = F.normalize(features[rows], dim=1)
        return self

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, D] (L2-normalised) @ prototypes.T / temperature -> [B, C] float32; graph to features only."""
        self._check_features(features)
        with torch.autocast(device_type=features.device.type, enabled=False):
            return features.float() @ self.prototypes.to(features.device).t() / self.temperature

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cluster NCE of features [B, D] against labels [B] (-1 rows ignored); scalar (see losses.cluster_nce)."""
        self._check_features(features)
        return cluster_nce(features, self.prototypes, labels, self.temperature)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Move the prototypes of the batch's labels towards features [B, D] (detached); labels [B], -1 ignored.

        Call explicitly after the optimiser step. "centroid": every instance in batch order;
        "hard": per label once, with its batch member least similar to the current prototype;
        "dynamic": per label once, with a random batch member of that label (PCLHD's dynamic prototype).
        """
        self._check_features(features)
        labels = check_labels(labels, features.shape[0], self.num_clusters).to(self.device)
        features = features.detach().to(self.device, torch.float32)
        valid = labels != IGNORE_LABEL
        features, labels = features[valid], labels[valid]
        if labels.numel() == 0:
            return
        if self.prototype == "centroid":
            self._update_in_order(features, labels)
            return
        if self.prototype == "hard":
            scores = (F.normalize(features, dim=1) * self.prototypes[labels]).sum(dim=1)
        else:
            scores = self._random_scores(features.shape[0])
        rows = _argmin_per_label(scores, labels, self.num_clusters)
        present = rows < features.shape[0]
        self._momentum_step(torch.nonzero(present).squeeze(1), features[rows[present]])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """{"prototypes": [C, D] float32}: tensors only, safe for torch.load(weights_only=True).

        The generator is not included: whoever owns it checkpoints its state.
        """
        return {"prototypes": self.prototypes.detach().clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore prototypes from `state_dict()`; they must be [C, D] of this memory."""
        prototypes = state.get("prototypes") if isinstance(state, Mapping) else None
        if not isinstance(prototypes, torch.Tensor):
            raise ValueError("memory state must be a mapping with a 'prototypes' tensor")
        if tuple(prototypes.shape) != (self.num_clusters, self.num_features):
            raise ValueError(f"memory state holds prototypes {tuple(prototypes.shape)}, this memory needs "
                             f"{(self.num_clusters, self.num_features)}")
        self.prototypes = prototypes.detach().to(self.device, torch.float32).clone()

    def to(self, device: str | torch.device) -> ClusterMemory:
        """Move the prototypes to `device`; returns self."""
        self.device = torch.device(device)
        self.prototypes = self.prototypes.to(self.device)
        return self

    def _update_in_order(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Per-instance momentum updates in batch order: round r updates every label's r-th occurrence."""
        sorted_labels, order = torch.sort(labels, stable=True)
        positions = torch.arange(labels.numel(), device=labels.device)
        is_start = torch.ones_like(sorted_labels, dtype=torch.bool)
        is_start[1:] = sorted_labels[1:] != sorted_labels[:-1]
        starts = torch.cummax(torch.where(is_start, positions, 0), dim=0).values
        occurrence = torch.empty_like(labels)
        occurrence[order] = positions - starts
        for round_ in range(int(occurrence.max()) + 1):
            rows = occurrence == round_
            self._momentum_step(labels[rows], features[rows])

    def _momentum_step(self, clusters: torch.Tensor, features: torch.Tensor) -> None:
        """p[c] <- normalize(momentum * p[c] + (1 - momentum) * f) for distinct clusters [K], features [K, D]."""
        mixed = self.momentum * self.prototypes[clusters] + (1.0 - self.momentum) * features
        self.prototypes[clusters] = F.normalize(mixed, dim=1)

    def _random_scores(self, n: int) -> torch.Tensor:
        """A random permutation of 0..n-1 [n] on the memory's device, drawn with the memory's generator."""
        device = self.generator.device if self.generator is not None else self.device
        return torch.randperm(n, generator=self.generator, device=device).to(self.device)

    def _check_features(self, features: torch.Tensor) -> None:
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != self.num_features:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"features must be [B, {self.num_features}], got {shape}")


def _as_features(features) -> torch.Tensor:
    features = torch.as_tensor(features)
    if features.ndim != 2 or not features.dtype.is_floating_point:
        raise ValueError(f"features must be a float [N, D] tensor, got {features.dtype} {tuple(features.shape)}")
    return features


def _cluster_labels(labels, num_samples: int) -> torch.Tensor:
    """Validated cluster labels [N] int64: ids exactly 0..C-1 (each used), -1 = outlier."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != num_samples:
        raise ValueError(f"labels must be [N] with N = {num_samples} features, got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer cluster ids, got dtype {labels.dtype}")
    labels = labels.long()
    if bool((labels < IGNORE_LABEL).any()):
        raise ValueError("labels must be cluster ids >= 0 or -1 (outlier)")
    ids = torch.unique(labels[labels != IGNORE_LABEL])
    if ids.numel() == 0:
        raise ValueError("labels hold no cluster (all -1): nothing to build a memory from")
    if int(ids[-1]) != ids.numel() - 1:
        raise ValueError(f"cluster ids must be exactly 0..C-1, got {ids.numel()} ids up to {int(ids[-1])}; "
                         f"relabel them first (reid.cluster.relabel_consecutive)")
    return labels


def _cluster_means(features: torch.Tensor, labels: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Mean feature per cluster [C, D] from features [N, D] and labels [N] in 0..C-1."""
    sums = torch.zeros(num_clusters, features.shape[1], device=features.device).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_clusters).clamp_min(1)
    return sums / counts.unsqueeze(1).to(features.dtype)


def _argmin_per_label(scores: torch.Tensor, labels: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Row [C] of the lowest score per label (first row on ties); n = len(scores) where a label is absent."""
    n = scores.shape[0]
    big = torch.finfo(scores.dtype).max if scores.dtype.is_floating_point else torch.iinfo(scores.dtype).max
    best = scores.new_full((num_clusters,), big).scatter_reduce(0, labels, scores, "amin")
    rows = torch.arange(n, device=scores.device)
    is_best = scores == best[labels]
    first = torch.full((num_clusters,), n, device=scores.device, dtype=torch.int64)
    return first.scatter_reduce(0, labels[is_best], rows[is_best], "amin")
