"""Parts the methods share: memories per modality and the objectives built on them.

Update order: where one memory is updated by two terms of a step, the references update it inside autograd's
backward, which runs the terms in reverse order of creation (later terms first; checked with the references'
autograd functions on the CPU). Their cross-modal term is created after the intra-modality ones, so its update
comes first. A `MemoryObjective` lists its terms in the references' order of creation (`memory_terms`) and updates
them in reverse after the optimiser step.

Gradients (`train.memory_update`): "after_step" (default) takes every term's gradient against the prototypes of
the step's start. "in_backward" is the references' rule: a term's gradient reads the prototypes as the backward of
the terms created after it left them (`prototypes_in_backward`), e.g. PGM's intra-modality term against a memory
its cross-modal term already moved (PGM clustercontrast/models/cm.py:20-33 with trainers.py:76-103; PCLHD
cm.py:52-79, trainers.py:150-184, 202-209). The memories end the step equal under both rules.
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


@dataclass
class MemoryTerm:
    """One memory loss of a step: `weight` x memory.loss(features [b, D], labels [b]), added to the loss term `name`;
    the memory's update after the step reads the same features and labels."""

    name: str
    memory: PrototypeMemory
    features: torch.Tensor
    labels: torch.Tensor
    weight: float = 1.0


def prototypes_in_backward(terms: list[MemoryTerm], update_terms: list[MemoryTerm]) -> list[torch.Tensor | None]:
    """Per term (in order of creation), the prototypes [R, D] its gradient reads when every memory updates inside
    autograd's backward, as the references' do: the backward runs the terms in reverse order of creation, each
    taking its gradient against its memory as the terms run before it left it, then updating it. `update_terms`:
    the same terms over the batch the updates read (every rank's, detached). None: the memory's current prototypes
    (no later term moved it). Updates are tried on copies; the memories are not touched."""
    seen: list[torch.Tensor | None] = [None] * len(terms)
    moved: dict[int, PrototypeMemory] = {}  # id(memory) -> a copy after the updates run so far
    for index in reversed(range(len(terms))):
        memory = terms[index].memory
        if id(memory) in moved:
            seen[index] = moved[id(memory)].prototypes
        if any(earlier.memory is memory for earlier in terms[:index]):  # an earlier-created term will read the move
            copy = moved.get(id(memory)) or memory.clone()
            copy.update(update_terms[index].features, update_terms[index].labels)
            moved[id(memory)] = copy
    return seen


class MemoryObjective(Objective):
    """An objective made of memory losses: `memory_terms` lists them in the references' order of creation; the
    loss sums them per name, the update runs each term's memory update in reverse order (module doc)."""

    def memory_terms(self, batch: StepBatch) -> list[MemoryTerm]:
        raise NotImplementedError

    def loss(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        terms = self.memory_terms(batch)
        gradient_prototypes = [None] * len(terms) if batch.update_batch is None else \
            prototypes_in_backward(terms, self.memory_terms(batch.update_batch))
        losses: dict[str, torch.Tensor] = {}
        for term, prototypes in zip(terms, gradient_prototypes):
            value = term.weight * term.memory.loss(term.features, term.labels, gradient_prototypes=prototypes)
            losses[term.name] = losses[term.name] + value if term.name in losses else value
        return losses

    def update(self, batch: StepBatch) -> None:
        for term in reversed(self.memory_terms(batch)):
            term.memory.update(term.features, term.labels)


class IntraModalityObjective(MemoryObjective):
    """Each modality against its own memory: terms "vis" and "ir" (the references' loss_rgb + loss_ir; their order
    of creation, infrared first, matters nowhere: the two memories are distinct)."""

    def __init__(self, memories: ModalityMemories) -> None:
        self.memories = memories

    def memory_terms(self, batch: StepBatch) -> list[MemoryTerm]:
        terms = []
        for modality in MODALITIES:
            features, labels = batch.of_modality(modality)
            terms.append(MemoryTerm(modality, self.memories[modality], features,
                                    self.memories.own_labels(labels, modality)))
        return terms


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

    def memory_terms(self, batch: StepBatch) -> list[MemoryTerm]:
        terms = super().memory_terms(batch)
        for source, target in self.directions:  # created after the intra-modality terms (trainers.py)
            features, labels = batch.of_modality(source)
            terms.append(MemoryTerm("cross", self.memories[target], features, self.cross_labels(labels, source),
                                    self.weight))
        return terms


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
