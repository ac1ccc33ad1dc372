"""oracle: the supervised upper bound on the same pipeline: the true identities as labels in every stage, one
`ClusterMemory` over them, the same network, data, budget and schedule as the methods. With `translated` set and
a view weight above 0 its cross stage's batches carry the translated views and train the view terms as `joint`'s
do (joint with perfect labels); without, the labels alone."""
from __future__ import annotations

from ..pseudo_labels import PseudoLabels, true_id_labels
from .base import EpochContext, EpochPlan, Method
from .joint import ViewOptions, shared_space_plan


class Oracle(Method):
    name = "oracle"
    Options = ViewOptions
    summary = "the upper bound: the true identities in every stage (in stage 2 with the translated views when given)"
    # its labels are the records' true ids: `reid.train.load_training_data` refuses a dataset without identities
    # (data.name=folder) for a method that sets this
    needs_identities = True

    def uses_views(self, phase: str, has_views: bool) -> bool:
        return phase == "cross" and has_views and self.options.trains_views

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels:
        return true_id_labels(context.true_ids)

    def plan(self, phase: str, context: EpochContext, labels: PseudoLabels) -> EpochPlan:
        return shared_space_plan(context, labels, self.options, uses_views=self.uses_views(phase, context.has_views))
