"""What every cluster memory shares: validated inputs, cluster means, the momentum step, float32 logits.

A memory is a plain class, not an nn.Module: its prototypes are constants to autograd (no parameters, never in
the model's state dict, no autograd.Function that updates in its backward as the references do). A step is

    loss = memory.loss(features, labels)          # graph only to `features`
    loss.backward(); optimizer.step()
    memory.update(features, labels)               # explicit, no_grad, detached features

Inputs are L2-normalised inside `loss` and `update`, as the references' memories do (`F.normalize(inputs)` in
their forward). Labels are cluster ids 0..C-1; -1 rows (outliers) are ignored by both.
Momentum follows cluster-contrast: p <- momentum * p + (1 - momentum) * f, then p <- p / ||p||, so `momentum`
weights the OLD prototype (0.1 = mostly the new feature).
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch
import torch.nn.functional as F

from ..losses import IGNORE_LABEL, check_labels


class PrototypeMemory:
    """Prototypes [R, D] float32 on `device` (R rows, a multiple of the C clusters), no gradient.

    Subclasses set `rows_per_cluster` and implement `_initial_prototypes`, `loss` and `_update`.
    """

    rows_per_cluster = 1

    def __init__(self, num_features: int, num_clusters: int, *, temperature: float = 0.05, momentum: float = 0.1,
                 device: str | torch.device = "cpu") -> None:
        if num_features < 1 or num_clusters < 1:
            raise ValueError(f"num_features and num_clusters must be >= 1, got {num_features} and {num_clusters}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1] (weight of the old prototype), got {momentum}")
        self.num_features, self.num_clusters = int(num_features), int(num_clusters)
        self.temperature, self.momentum = float(temperature), float(momentum)
        self.device = torch.device(device)
        self.prototypes = torch.zeros(self.rows_per_cluster * self.num_clusters, self.num_features, device=self.device)

    @classmethod
    def from_features(cls, features: torch.Tensor, labels, *, device: str | torch.device | None = None, **options):
        """A memory initialised from features [N, D] and cluster labels [N] in 0..C-1 (-1 = outlier, ignored); C is
        the largest label + 1. device: where the prototypes live (None: the features'). options: the constructor's."""
        features = as_features(features)
        labels = cluster_labels(labels, features.shape[0])
        memory = cls(features.shape[1], int(labels.max()) + 1, device=features.device if device is None else device,
                     **options)
        return memory.initialise(features, labels)

    @classmethod
    def from_centroids(cls, centroids: torch.Tensor, *, device: str | torch.device | None = None, **options):
        """A memory whose every prototype row of cluster c starts at normalize(centroids[c]); centroids [C, D]
        (cluster features computed elsewhere, e.g. PCLHD's modality-balanced means). options: the constructor's."""
        centroids = as_features(centroids)
        memory = cls(centroids.shape[1], centroids.shape[0], device=centroids.device if device is None else device,
                     **options)
        memory.prototypes = F.normalize(centroids.detach().to(memory.device, torch.float32), dim=1).repeat(
            memory.rows_per_cluster, 1)
        return memory

    @torch.no_grad()
    def initialise(self, features: torch.Tensor, labels):
        """Set the prototypes from features [N, D] and labels [N] (0..C-1, -1 ignored); returns self."""
        features = as_features(features).detach().to(self.device, torch.float32)
        labels = cluster_labels(labels, features.shape[0]).to(self.device)
        if features.shape[1] != self.num_features or int(labels.max()) + 1 != self.num_clusters:
            raise ValueError(f"memory holds {self.num_clusters} clusters of {self.num_features} features, got "
                             f"{int(labels.max()) + 1} clusters of {features.shape[1]}")
        valid = labels != IGNORE_LABEL
        self.prototypes = self._initial_prototypes(features[valid], labels[valid])
        return self

    def _initial_prototypes(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The normalised cluster means [C, D] (the references' `generate_cluster_features` + F.normalize),
        repeated `rows_per_cluster` times along the rows."""
        centroids = F.normalize(cluster_means(features, labels, self.num_clusters), dim=1)
        return centroids.repeat(self.rows_per_cluster, 1)

    def logits(self, features: torch.Tensor, gradient_prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """normalize(features [B, D]) @ prototypes.T / temperature -> [B, R] float32, graph to features.

        gradient_prototypes [R, D]: the prototypes the gradient to the features is taken against, where they differ
        from those of the value (the references' memories, updated inside the backward of an earlier term:
        `reid.methods.parts.prototypes_in_backward`); None: the same."""
        self._check_features(features)
        with torch.autocast(device_type=features.device.type, enabled=False):
            inputs = F.normalize(features.float(), dim=1)
            prototypes = self.prototypes.to(features.device)
            if gradient_prototypes is None:
                return inputs @ prototypes.t() / self.temperature
            return _ProductWithOtherGradient.apply(inputs, prototypes, gradient_prototypes.to(features.device)) \
                / self.temperature

    def loss(self, features: torch.Tensor, labels: torch.Tensor, *,
             gradient_prototypes: torch.Tensor | None = None) -> torch.Tensor:
        """The memory's loss of features [B, D] against labels [B] (-1 rows ignored); scalar, graph to features only.
        gradient_prototypes: as `logits`."""
        raise NotImplementedError

    def checked_labels(self, features: torch.Tensor, labels) -> torch.Tensor:
        """labels [B] of features [B, D] as int64 in -1..C-1 (ValueError otherwise), on the features' device."""
        self._check_features(features)
        return check_labels(labels, features.shape[0], self.num_clusters).to(features.device)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Move the prototypes of the batch's clusters towards features [B, D] (detached); labels [B], -1 ignored.
        Call explicitly after the optimiser step."""
        self._check_features(features)
        labels = check_labels(labels, features.shape[0], self.num_clusters).to(self.device)
        features = F.normalize(features.detach().to(self.device, torch.float32), dim=1)
        valid = labels != IGNORE_LABEL
        if bool(valid.any()):
            self._update(features[valid], labels[valid])

    def _update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        raise NotImplementedError

    def momentum_step(self, rows: torch.Tensor, features: torch.Tensor) -> None:
        """p[r] <- normalize(momentum * p[r] + (1 - momentum) * f) for distinct rows [K] and features [K, D]."""
        mixed = self.momentum * self.prototypes[rows] + (1.0 - self.momentum) * features
        self.prototypes[rows] = F.normalize(mixed, dim=1)

    def clone(self):
        """An independent copy (prototypes cloned): what an update would do, tried without touching this memory."""
        copied = copy.copy(self)
        copied.prototypes = self.prototypes.clone()
        return copied

    def state_dict(self) -> dict[str, torch.Tensor]:
        """{"prototypes": [R, D] float32}: tensors only, safe for torch.load(weights_only=True)."""
        return {"prototypes": self.prototypes.detach().clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the prototypes of `state_dict()`; they must have this memory's shape."""
        prototypes = state.get("prototypes") if isinstance(state, Mapping) else None
        if not isinstance(prototypes, torch.Tensor):
            raise ValueError("memory state must be a mapping with a 'prototypes' tensor")
        if tuple(prototypes.shape) != tuple(self.prototypes.shape):
            raise ValueError(f"memory state holds prototypes {tuple(prototypes.shape)}, this memory needs "
                             f"{tuple(self.prototypes.shape)}")
        self.prototypes = prototypes.detach().to(self.device, torch.float32).clone()

    def to(self, device: str | torch.device):
        """Move the prototypes to `device`; returns self."""
        self.device = torch.device(device)
        self.prototypes = self.prototypes.to(self.device)
        return self

    def _check_features(self, features: torch.Tensor) -> None:
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != self.num_features:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"features must be [B, {self.num_features}], got {shape}")


class _ProductWithOtherGradient(torch.autograd.Function):
    """inputs [B, D] @ prototypes [R, D].T whose gradient to the inputs is grad [B, R] @ gradient_prototypes [R, D]
    (the references' `CM.backward`: `grad_outputs.mm(ctx.features)` after earlier backwards moved the features)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, prototypes: torch.Tensor, gradient_prototypes: torch.Tensor):
        ctx.save_for_backward(gradient_prototypes)
        return inputs @ prototypes.t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (gradient_prototypes,) = ctx.saved_tensors
        return grad @ gradient_prototypes, None, None


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [B, C] against labels [B] over the rows not labelled -1; with no such row a
    zero that still carries the graph of `logits`."""
    labels = labels.to(logits.device)
    valid = labels != IGNORE_LABEL
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid], labels[valid])


def as_features(features) -> torch.Tensor:
    features = torch.as_tensor(features)
    if features.ndim != 2 or not features.dtype.is_floating_point:
        raise ValueError(f"features must be a float [N, D] tensor, got {features.dtype} {tuple(features.shape)}")
    return features


def cluster_labels(labels, num_samples: int) -> torch.Tensor:
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


def cluster_means(features: torch.Tensor, labels: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Mean feature per cluster [C, D] from features [N, D] and labels [N] in 0..C-1 (a cluster without rows: 0)."""
    sums = torch.zeros(num_clusters, features.shape[1], device=features.device).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_clusters).clamp_min(1)
    return sums / counts.unsqueeze(1).to(features.dtype)


def argmin_per_label(scores: torch.Tensor, labels: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Row [C] of the lowest score per label (the first row on ties, as np.argmin); n = len(scores) where a label
    has no row."""
    n = scores.shape[0]
    best = scores.new_full((num_clusters,), torch.finfo(scores.dtype).max).scatter_reduce(0, labels, scores, "amin")
    rows = torch.arange(n, device=scores.device)
    is_best = scores == best[labels]
    first = torch.full((num_clusters,), n, device=scores.device, dtype=torch.int64)
    return first.scatter_reduce(0, labels[is_best], rows[is_best], "amin")


def occurrence_rounds(labels: torch.Tensor) -> torch.Tensor:
    """occurrence [B]: how many earlier rows share each row's label (0 for its first row), so that updating round
    r = 0, 1, ... with the rows of occurrence r applies per-instance updates in batch order."""
    sorted_labels, order = torch.sort(labels, stable=True)
    positions = torch.arange(labels.numel(), device=labels.device)
    is_start = torch.ones_like(sorted_labels, dtype=torch.bool)
    is_start[1:] = sorted_labels[1:] != sorted_labels[:-1]
    starts = torch.cummax(torch.where(is_start, positions, 0), dim=0).values
    occurrence = torch.empty_like(labels)
    occurrence[order] = positions - starts
    return occurrence
