"""Parts the methods share: memories per modality and the objectives built on them.

Update order: where one memory is updated by two terms of a step, the references update it inside autograd's
backward, which runs the terms in reverse order of creation (later terms first; checked with the references'
autograd functions on the CPU). Their cross-modal term is created after the intra-modality ones, so its update
comes first: `CrossModalObjective.update` keeps that order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..cluster.matching import ClusterMatching
from ..losses import cross_view_nce
from ..memories import ClusterMemory, PrototypeMemory
from ..pseudo_labels import PseudoLabels
from .base import EpochContext, Objective, StepBatch

MODALITIES = ("vis", "ir")


@dataclass
class ModalityMemories:
    """A memory per modality over per-modality labels (side by side: infrared labels start at `num_vis`)."""

    vis: PrototypeMemory
    ir: PrototypeMemory
    num_vis: int

    def __getitem__(self, modality: str) -> PrototypeMemory:
        return self.vis if modality == "vis" else self.ir

    def own_labels(self, labels: torch.Tensor, modality: str) -> torch.Tensor:
        """Side-by-side labels [b] of one modality's rows -> that modality's memory rows (-1 stays -1)."""
        if modality == "vis":
            return labels
        return torch.where(labels >= 0, labels - self.num_vis, labels)


def build_modality_memories(memory_class: type[PrototypeMemory], context: EpochContext, pseudo: PseudoLabels, *,
                            features: torch.Tensor | None = None, **options) -> ModalityMemories:
    """A `memory_class` memory per modality, built from `features` [N, D] (default: the context's) and the
    per-modality labels; temperature and momentum from the run's train section."""
    features = context.features if features is None else features
    memories = {}
    for modality in MODALITIES:
        rows = context.rows_of(modality)
        labels = pseudo.of_modality(context.is_ir, modality)
        if not (labels >= 0).any():
            raise ValueError(f"no {modality} cluster this epoch: all {len(labels)} {modality} images are outliers; "
                             f"loosen the clustering (cluster.eps, cluster.min_samples, cluster.k1)")
        memories[modality] = memory_class.from_features(features[rows], labels, device=context.device,
                                                        temperature=context.temperature,
                                                        momentum=context.momentum, **options)
    return ModalityMemories(memories["vis"], memories["ir"], pseudo.num_vis_clusters)


def modality_centroids(features: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """[C, D] mean feature of each cluster 0..C-1 (the references' `generate_cluster_features`)."""
    labels_t = torch.as_tensor(labels)
    keep = labels_t >= 0
    num = int(labels_t.max()) + 1
    sums = torch.zeros(num, features.shape[1]).index_add_(0, labels_t[keep], features[keep].float().cpu())
    return sums / torch.bincount(labels_t[keep], minlength=num).clamp_min(1).unsqueeze(1)


class IntraModalityObjective(Objective):
    """Each modality against its own memory: terms "vis" and "ir" (the references' loss_rgb + loss_ir)."""

    def __init__(self, memories: ModalityMemories) -> None:
        self.memories = memories

    def loss(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        terms = {}
        for modality in MODALITIES:
            features, labels = batch.of_modality(modality)
            terms[modality] = self.memories[modality].loss(features, self.memories.own_labels(labels, modality))
        return terms

    def update(self, batch: StepBatch) -> None:
        for modality in MODALITIES:
            features, labels = batch.of_modality(modality)
            self.memories[modality].update(features, self.memories.own_labels(labels, modality))


class CrossModalObjective(IntraModalityObjective):
    """PGM's cross-modal memory loss on top of the intra-modality ones: term "cross" = weight x the loss of one
    modality's features against the other modality's memory, with their clusters' matched partners as labels.
    Direction (PGM trainers.py `alternate`): odd epochs of the stage infrared features against the visible memory,
    even epochs visible features against the infrared memory; `alternate=False` adds both every epoch."""

    def __init__(self, memories: ModalityMemories, matching: ClusterMatching, *, weight: float, stage_epoch: int,
                 alternate: bool = True) -> None:
        super().__init__(memories)
        self.weight, self.matching = weight, matching
        directions = [("ir", "vis"), ("vis", "ir")] if not alternate else \
            [("ir", "vis") if stage_epoch % 2 == 1 else ("vis", "ir")]
        self.directions = directions if matching.matched else []
        device = memories.vis.device
        self.partners = {"vis": torch.as_tensor(matching.vis_to_ir, device=device),
                         "ir": torch.as_tensor(matching.ir_to_vis, device=device)}

    def cross_labels(self, labels: torch.Tensor, source: str) -> torch.Tensor:
        """Labels [b] of `source` rows -> their clusters' partners in the other memory (-1 without one)."""
        own = self.memories.own_labels(labels, source).to(self.partners[source].device)
        return torch.where(own >= 0, self.partners[source][own.clamp_min(0)], own)

    def loss(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        terms = super().loss(batch)
        if self.directions:
            terms["cross"] = self.weight * sum(
                self.memories[target].loss(features, self.cross_labels(labels, source))
                for source, target in self.directions for features, labels in [batch.of_modality(source)])
        return terms

    def update(self, batch: StepBatch) -> None:
        for source, target in reversed(self.directions):  # created last, updated first (module doc)
            features, labels = batch.of_modality(source)
            self.memories[target].update(features, self.cross_labels(labels, source))
        super().update(batch)


class SharedSpaceObjective(Objective):
    """One memory over a shared label space: term "cluster" over every image; with the translated views, "view"
    (the views against the memory with their image's label) and "cross_view" (image <-> its view instance NCE,
    views of other clusters as the negatives), each weighted."""

    def __init__(self, memory: PrototypeMemory, *, view_weight: float = 0.0, cross_view_weight: float = 0.0,
                 temperature: float = 0.05, uses_views: bool = False) -> None:
        self.memory, self.temperature = memory, temperature
        self.view_weight, self.cross_view_weight = view_weight, cross_view_weight
        self.uses_views = uses_views

    def loss(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        terms = {"cluster": self.memory.loss(batch.features, batch.labels)}
        if self.uses_views:
            own, labels = batch.features[batch.view_rows], batch.labels[batch.view_rows]
            terms["view"] = self.view_weight * self.memory.loss(batch.view_features, labels)
            terms["cross_view"] = self.cross_view_weight * cross_view_nce(own, batch.view_features, self.temperature,
                                                                          labels=labels)
        return terms

    def update(self, batch: StepBatch) -> None:
        self.memory.update(batch.features, batch.labels)


def shared_cluster_memory(context: EpochContext, pseudo: PseudoLabels,
                          memory_class: type[PrototypeMemory] = ClusterMemory, **options) -> PrototypeMemory:
    """A memory over a shared label space, built from the context's features."""
    return memory_class.from_features(context.features, pseudo.labels, device=context.device,
                                      temperature=context.temperature, momentum=context.momentum, **options)
