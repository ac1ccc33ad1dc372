"""pclhd: PCLHD, progressive contrastive learning with hard and dynamic prototypes (shijiangming1/PCLHD @ c1f7b24,
train_sysu.py / train_regdb.py, clustercontrast/trainers.py, clustercontrast/models/cm.py).

- "intra" (`main_worker_stage1`, `-mb CMhybrid`): per-modality clusters, a `HybridMemory` per modality (centroid
  and hard halves, both from the normalised cluster mean), loss = the hybrid loss of each modality
  (0.5 * (CE(hard) + relu(CE(centroid) - 0.2))).
- "cross" (`main_worker_stage2`, `ClusterContrastTrainer_PCLMP`): at its start an EMA teacher copies the student.
  Every epoch: per-modality clusters, and PCLHD's "all" clusters of both modalities together (Jaccard k1 40, k2
  32, modality-balanced query expansion: `reid.pseudo_labels.modality_invariant_labels`); per modality a
  `HybridMemory` and an `InstanceMemory` (16 instances per cluster from the teacher's features); a `HybridMemory`
  over the "all" clusters from the mean of their visible and infrared means; PGM's matching of the per-modality
  clusters (PCLHD's variant). Each iteration, two passes with an optimiser step each:
  1. per-modality batches: hybrid(visible) + hybrid(infrared) + 0.25 x the alternating cross-modal hybrid loss
     + the dynamic-prototype loss (`InstanceMemory`) of each modality;
  2. batches of the "all" clusters holding both modalities: hybrid(infrared) + hybrid(visible) on the "all"
     memory;
  then the teacher follows the student (momentum 0.999). The teacher is what the stage evaluates and delivers.

`dynamic_loss`: the paper's dynamic-prototype term trains the student: its features against the instance
memory, which the teacher's features of the batch refill. The released code (`"released"`) computes the term from
the teacher's features under torch.no_grad(), so it trains nothing and, its update living in a backward that never
runs, the instance memory keeps its initial draw all epoch (PCLHD issue #1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cluster.matching import MATCHING_RULES
from ..config import check_choice
from ..memories import HybridMemory, InstanceMemory
from ..pseudo_labels import PseudoLabels, modality_invariant_labels
from .base import EpochContext, EpochPlan, Method, StepBatch, TrainingPass
from .cluster_contrast import intra_modality_labels
from .ema import make_teacher, update_teacher
from .parts import (MODALITIES, CrossModalObjective, IntraModalityObjective, MemoryObjective, MemoryTerm,
                    ModalityMemories, build_modality_memories)
from .pgm import match_clusters

DYNAMIC_LOSSES = ("paper", "released")


@dataclass
class PCLHDOptions:
    margin: float = 0.2  # r of the hybrid loss: relu(CE(centroid) - r)
    cross_weight: float = 0.25  # the cross-modal term's weight (trainers.py)
    matching: str = "pclhd"  # PGM's matching rule (train_sysu.py: PCLHD's own variant; train_regdb.py: one_sided)
    alternate: bool = True
    num_instances: int = 16  # instances per cluster of the dynamic-prototype memory
    ema_momentum: float = 0.999
    mixed_k1: int = 40  # the "all" clustering's Jaccard k1 / k2 (train_sysu.py:829)
    mixed_k2: int = 32
    dynamic_loss: str = "paper"  # paper | released (module doc)

    def __post_init__(self) -> None:
        check_choice("method.options.matching", self.matching, MATCHING_RULES)
        check_choice("method.options.dynamic_loss", self.dynamic_loss, DYNAMIC_LOSSES)


@dataclass(frozen=True)
class CrossLabels:
    """The cross phase's labels: per-modality (side by side) and the "all" clusters of both modalities."""

    per_modality: PseudoLabels
    mixed: PseudoLabels


class DynamicPrototypeObjective(CrossModalObjective):
    """PGM's cross-modal objective on hybrid memories, plus term "dynamic": each modality against its
    `InstanceMemory` (student features under the paper's rule, the teacher's under the released one)."""

    uses_teacher = True

    def __init__(self, memories: ModalityMemories, instances: ModalityMemories, *, released: bool, **cross) -> None:
        super().__init__(memories, **cross)
        self.instances, self.released = instances, released

    def loss(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        terms = super().loss(batch)
        features = batch.teacher_features if self.released else batch.features
        terms["dynamic"] = sum(self.instances[m].loss(features[rows], self.instances.own_labels(batch.labels[rows], m))
                               for m in MODALITIES for rows in [batch.is_ir if m == "ir" else ~batch.is_ir])
        return terms

    def update(self, batch: StepBatch) -> None:
        super().update(batch)
        if not self.released:
            for modality in MODALITIES:
                rows = batch.is_ir if modality == "ir" else ~batch.is_ir
                self.instances[modality].update(batch.teacher_features[rows],
                                                self.instances.own_labels(batch.labels[rows], modality))


class MixedClusterObjective(MemoryObjective):
    """Term "mixed": the "all" memory's hybrid loss of the infrared rows plus that of the visible rows (the
    reference calls the memory once per modality, infrared first); so the visible rows update it first."""

    def __init__(self, memory: HybridMemory) -> None:
        self.memory = memory

    def memory_terms(self, batch: StepBatch) -> list[MemoryTerm]:
        return [MemoryTerm("mixed", self.memory, *batch.of_modality(modality)) for modality in ("ir", "vis")]


def balanced_centroids(features: torch.Tensor, labels: np.ndarray, is_ir: np.ndarray) -> torch.Tensor:
    """[C, D]: per cluster, the mean of its visible members' mean and its infrared members' mean (the one present
    when the cluster holds one modality): train_sysu.py `generate_modal_invariant_cluster_features`."""
    num = int(labels.max()) + 1
    means, present = [], []
    for modality_rows in (~is_ir, is_ir):
        rows = np.flatnonzero(modality_rows & (labels >= 0))
        index = torch.as_tensor(labels[rows])
        sums = torch.zeros(num, features.shape[1]).index_add_(0, index, features[rows].float().cpu())
        counts = torch.bincount(index, minlength=num)
        means.append(sums / counts.clamp_min(1).unsqueeze(1))
        present.append((counts > 0).float().unsqueeze(1))
    return (means[0] * present[0] + means[1] * present[1]) / (present[0] + present[1]).clamp_min(1)


def bimodal_rows(mixed: PseudoLabels, is_ir: np.ndarray) -> np.ndarray:
    """mixed.labels [N] with -1 for every image whose cluster holds one modality only (PCLHD's "all" loaders)."""
    labels = mixed.labels
    num = int(labels.max()) + 1
    has = [np.bincount(labels[rows & (labels >= 0)], minlength=num) > 0 for rows in (~is_ir, is_ir)]
    both = has[0] & has[1]
    return np.where((labels >= 0) & both[np.maximum(labels, 0)], labels, -1)


class PCLHD(Method):
    name = "pclhd"
    Options = PCLHDOptions
    summary = ("hybrid centroid + hard prototypes, then an EMA teacher's dynamic prototypes, PGM's cross-modal "
               "term and a pass over mixed clusters")

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self._teacher: nn.Module | None = None

    def needs_teacher_features(self, phase: str) -> bool:
        return phase == "cross"

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels | CrossLabels:
        per_modality = intra_modality_labels(context)
        if phase == "intra":
            return per_modality
        mixed = modality_invariant_labels(context.features, context.is_ir, context.cluster,
                                          k1=self.options.mixed_k1, k2=self.options.mixed_k2)
        return CrossLabels(per_modality, mixed)

    def plan(self, phase: str, context: EpochContext, labels: Any) -> EpochPlan:
        options = self.options
        if phase == "intra":
            memories = build_modality_memories(HybridMemory, context, labels, margin=options.margin)
            return EpochPlan([TrainingPass(labels.labels, IntraModalityObjective(memories))], report=labels)
        per_modality, mixed = labels.per_modality, labels.mixed
        memories = build_modality_memories(HybridMemory, context, per_modality, margin=options.margin)
        instances = build_modality_memories(InstanceMemory, context, per_modality, features=context.teacher_features,
                                            num_instances=options.num_instances, generator=context.generator())
        objective = DynamicPrototypeObjective(
            memories, instances, released=options.dynamic_loss == "released",
            matching=match_clusters(context, per_modality, options.matching), weight=options.cross_weight,
            stage_epoch=context.stage_epoch, alternate=options.alternate)
        passes = [TrainingPass(per_modality.labels, objective)]
        drawn = bimodal_rows(mixed, context.is_ir)
        if (drawn[context.is_ir] >= 0).any() and (drawn[~context.is_ir] >= 0).any():
            memory = HybridMemory.from_centroids(balanced_centroids(context.features, mixed.labels, context.is_ir),
                                                 device=context.device, temperature=context.temperature,
                                                 momentum=context.momentum, margin=options.margin)
            passes.append(TrainingPass(drawn, MixedClusterObjective(memory)))
        return EpochPlan(passes, report=mixed,
                         notes={"bimodal_clusters": len(np.unique(drawn[drawn >= 0])),
                                "matched": objective.matching.matched})

    # ---------------------------------------------------------------- the EMA teacher

    def start_stage(self, phase: str, model: nn.Module) -> None:
        if phase == "cross" and self._teacher is None:
            self._teacher = make_teacher(model)

    def after_iteration(self, model: nn.Module) -> None:
        if self._teacher is not None:
            update_teacher(self._teacher, model, self.options.ema_momentum)

    def teacher(self) -> nn.Module | None:
        return self._teacher

    def delivered_model(self, model: nn.Module) -> nn.Module:
        return self._teacher if self._teacher is not None else model

    def state_dict(self) -> dict[str, Any]:
        return {} if self._teacher is None else {"teacher": self._teacher.state_dict()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        if "teacher" in state:
            self._teacher = make_teacher(model)
            self._teacher.load_state_dict(state["teacher"])
