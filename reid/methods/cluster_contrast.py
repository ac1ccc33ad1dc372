"""cluster_contrast: cluster-contrast within each modality, no cross-modal step (the first stage of ADCA, PGM and
their successors: yangbincv/ADCA adca_sysu_train.py `main_worker_stage1` with `ClusterContrastTrainer_ADCA_joint`).

Every epoch, both phases: each modality's features clustered on their own (k-reciprocal Jaccard + DBSCAN), a
`ClusterMemory` per modality initialised with the normalised cluster means, loss = ClusterNCE(visible) +
ClusterNCE(infrared), per-instance momentum updates. The second stage starts from a fresh optimiser (the
references' stage-2 restart), so this is also the two-stage pipeline with no cross-modal step at all.
"""
from __future__ import annotations

from ..memories import ClusterMemory
from ..pseudo_labels import PseudoLabels, per_modality_labels
from .base import EpochContext, EpochPlan, Method, TrainingPass
from .parts import IntraModalityObjective, build_modality_memories

def intra_modality_labels(context: EpochContext) -> PseudoLabels:
    """The per-modality clusters every cluster-contrast stage trains on."""
    return per_modality_labels(context.features, context.is_ir, context.cluster)


def intra_modality_plan(context: EpochContext, pseudo: PseudoLabels) -> EpochPlan:
    """A ClusterMemory per modality, one pass of ClusterNCE(visible) + ClusterNCE(infrared)."""
    memories = build_modality_memories(ClusterMemory, context, pseudo)
    return EpochPlan([TrainingPass(pseudo.labels, IntraModalityObjective(memories))], report=pseudo)


class ClusterContrast(Method):
    name = "cluster_contrast"
    summary = "cluster-contrast within each modality, no cross-modal step (ADCA's stage 1 in both stages)"

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels:
        return intra_modality_labels(context)

    def plan(self, phase: str, context: EpochContext, labels: PseudoLabels) -> EpochPlan:
        return intra_modality_plan(context, labels)
