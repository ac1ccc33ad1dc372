"""pgm: PGM, progressive graph matching (zesenwu23/USL-VI-ReID @ ed4a7df, train_sysu.py / train_regdb.py,
clustercontrast/trainers.py `ClusterContrastTrainer`).

- "intra": cluster_contrast (`main_worker_stage1`, `use_hard` off).
- "cross" (`main_worker_stage2`): per-modality clusters; a memory per modality from the normalised cluster means,
  the hard-sample `HardClusterMemory` (train_sysu.py: `use_hard=True`; train_regdb.py keeps `ClusterMemory`:
  `cross_memory`); the clusters matched by `reid.cluster.matching.progressive_graph_matching` on their centroids
  (`matching`); loss = ClusterNCE(visible) + ClusterNCE(infrared) + 0.25 x the cross-modal memory loss, whose
  direction alternates by epoch (odd: infrared features against the visible memory with their clusters'
  visible partners; even: the reverse). The cross term's memory update runs before the intra-modality ones, as
  in the reference's backward.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cluster.matching import MATCHING_RULES, ClusterMatching, progressive_graph_matching
from ..config import check_choice
from ..memories import ClusterMemory, HardClusterMemory
from ..pseudo_labels import PseudoLabels, matched_labels
from .base import EpochContext, EpochPlan, Method, TrainingPass
from .cluster_contrast import intra_modality_labels, intra_modality_plan
from .parts import CrossModalObjective, build_modality_memories, modality_centroids

CROSS_MEMORIES = {"hard": HardClusterMemory, "centroid": ClusterMemory}


@dataclass
class PGMOptions:
    cross_weight: float = 0.25  # weight of the cross-modal memory loss (trainers.py: 0.25 * cross_loss)
    matching: str = "one_sided"  # one_sided (train_sysu.py) | symmetric (train_regdb.py) | pclhd
    cross_memory: str = "hard"  # hard (train_sysu.py stage 2) | centroid (train_regdb.py stage 2)
    alternate: bool = True  # the cross term's direction alternates by epoch (trainers.py `alternate = True`)

    def __post_init__(self) -> None:
        check_choice("method.options.matching", self.matching, MATCHING_RULES)
        check_choice("method.options.cross_memory", self.cross_memory, tuple(CROSS_MEMORIES))


def match_clusters(context: EpochContext, pseudo: PseudoLabels, rule: str) -> ClusterMatching:
    """PGM's matching of the per-modality clusters by their centroids (means of the clustering features)."""
    vis, ir = (modality_centroids(context.features[context.rows_of(m)], pseudo.of_modality(context.is_ir, m))
               for m in ("vis", "ir"))
    return progressive_graph_matching(vis, ir, rule=rule)


def matched_pairs(matching: ClusterMatching) -> list[tuple[int, int]]:
    """Every (visible, infrared) edge of a matching, both directions."""
    return ([(v, int(i)) for v, i in enumerate(matching.vis_to_ir) if i >= 0]
            + [(int(v), i) for i, v in enumerate(matching.ir_to_vis) if v >= 0])


class PGM(Method):
    name = "pgm"
    Options = PGMOptions
    summary = ("cluster-contrast per modality, then hard-sample memories and PGM's cross-modal memory loss over "
               "progressive graph matching")
    intra_stage_of = "cluster_contrast"

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels:
        return intra_modality_labels(context)

    def plan(self, phase: str, context: EpochContext, labels: PseudoLabels) -> EpochPlan:
        if phase == "intra":
            return intra_modality_plan(context, labels)
        options = self.options
        memories = build_modality_memories(CROSS_MEMORIES[options.cross_memory], context, labels)
        matching = match_clusters(context, labels, options.matching)
        objective = CrossModalObjective(memories, matching, weight=options.cross_weight,
                                        stage_epoch=context.stage_epoch, alternate=options.alternate)
        return EpochPlan([TrainingPass(labels.labels, objective)], report=matched_labels(labels, matched_pairs(matching)),
                         notes={"matched": matching.matched})
