"""adca: ADCA (yangbincv/ADCA @ 8d0a8cb, adca_sysu_train.py / adca_regdb_train.py).

- "intra": cluster_contrast (`main_worker_stage1`).
- "cross" (`main_worker_stage2`): as "intra" (per-modality clusters, a `ClusterMemory` per modality,
  ClusterNCE(visible) + ClusterNCE(infrared)), and after the memories are built, every epoch, the cross-modality
  memory aggregation (CMA, lines 814-850): `reid.memories.aggregate_cross_modal` with similarity threshold 0.5 and
  lambda 0.1 moves each visible prototype of a greedily matched cluster pair towards its infrared partner.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..memories import aggregate_cross_modal
from ..pseudo_labels import PseudoLabels, matched_labels
from .base import EpochContext, EpochPlan, Method
from .cluster_contrast import intra_modality_labels, intra_modality_plan


@dataclass
class ADCAOptions:
    cma_threshold: float = 0.5  # image pairs at least this similar vote for their clusters' pair
    cma_weight: float = 0.1  # lambda: weight of the visible prototype's old value (the rest: its infrared partner's)


class ADCA(Method):
    name = "adca"
    Options = ADCAOptions
    summary = "cluster-contrast per modality, then ADCA's cross-modality memory aggregation (CMA) every stage-2 epoch"
    intra_stage_of = "cluster_contrast"

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels:
        return intra_modality_labels(context)

    def plan(self, phase: str, context: EpochContext, labels: PseudoLabels) -> EpochPlan:
        plan = intra_modality_plan(context, labels)
        if phase == "intra":
            return plan
        memories = plan.passes[0].objective.memories
        vis, ir = (context.rows_of(modality) for modality in ("vis", "ir"))
        pairs = aggregate_cross_modal(memories.vis, memories.ir, context.features[vis], context.features[ir],
                                      labels.of_modality(context.is_ir, "vis"), labels.of_modality(context.is_ir, "ir"),
                                      threshold=self.options.cma_threshold, weight=self.options.cma_weight)
        return EpochPlan(plan.passes, report=matched_labels(labels, pairs), notes={"cma_pairs": len(pairs)})
