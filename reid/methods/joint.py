"""joint: this toolkit's method, translate -> cluster -> contrastive ReID over the translated views.

- "intra": cluster_contrast.
- "cross": DM2C-style mixed-modal clustering (every image placed in one modality space with its translated view's
  features, `cluster.unify` / `cluster.center`, with its own neighbourhoods `mixed_k1` / `mixed_k2` and optionally
  PCLHD's modality-balanced query expansion, `balanced`), one `ClusterMemory` over the shared label space, and three terms: ClusterNCE of the
  images ("cluster"), of their translated views with the image's label ("view", `view_weight`), and the instance
  NCE in which an image and its translation are the positive pair and the views of other clusters the negatives
  ("cross_view", `cross_view_weight`). Needs `translated`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import ConfigError
from ..pseudo_labels import PseudoLabels, mixed_modal_labels
from .base import EpochContext, EpochPlan, Method, TrainingPass
from .cluster_contrast import intra_modality_labels, intra_modality_plan
from .parts import SharedSpaceObjective, shared_cluster_memory


@dataclass
class ViewOptions:
    view_weight: float = 1.0  # ClusterNCE of the translated views (their image's label)
    cross_view_weight: float = 1.0  # image <-> its translation instance NCE

    def __post_init__(self) -> None:
        for key in ("view_weight", "cross_view_weight"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"method.options.{key} must be >= 0, got {getattr(self, key)}")

    @property
    def trains_views(self) -> bool:
        return self.view_weight > 0 or self.cross_view_weight > 0


@dataclass
class JointOptions(ViewOptions):
    # the mixed-modal clustering's k-reciprocal neighbourhoods (None: cluster.k1 / cluster.k2) and PCLHD's
    # modality-balanced query expansion (`reid.cluster.jaccard_distance` with is_ir)
    mixed_k1: Optional[int] = None
    mixed_k2: Optional[int] = None
    balanced: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("mixed_k1", "mixed_k2"):
            if getattr(self, key) is not None and not getattr(self, key) >= 1:
                raise ConfigError(f"method.options.{key} must be >= 1 (or null: the cluster section's), "
                                  f"got {getattr(self, key)}")


def shared_space_plan(context: EpochContext, pseudo: PseudoLabels, options: ViewOptions, uses_views: bool
                      ) -> EpochPlan:
    """One ClusterMemory over a shared label space; with `uses_views`, the view terms of `options`."""
    objective = SharedSpaceObjective(shared_cluster_memory(context, pseudo), view_weight=options.view_weight,
                                     cross_view_weight=options.cross_view_weight, temperature=context.temperature,
                                     uses_views=uses_views)
    return EpochPlan([TrainingPass(pseudo.labels, objective)], report=pseudo)


class Joint(Method):
    name = "joint"
    Options = JointOptions
    summary = "mixed-modal clusters over the translated views, with the views' losses (needs translated)"
    intra_stage_of = "cluster_contrast"

    def requires_views(self, phase: str) -> bool:
        return phase == "cross"

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels:
        if phase == "intra":
            return intra_modality_labels(context)
        return mixed_modal_labels(context.features, context.view_features, context.is_ir, context.cluster,
                                  k1=self.options.mixed_k1, k2=self.options.mixed_k2, balance=self.options.balanced)

    def plan(self, phase: str, context: EpochContext, labels: PseudoLabels) -> EpochPlan:
        if phase == "intra":
            return intra_modality_plan(context, labels)
        return shared_space_plan(context, labels, self.options, uses_views=self.options.trains_views)
