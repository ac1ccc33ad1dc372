"""The skeleton every method fills in, and what the training loop hands it.

A method (`Method`) decides, for each phase of training ("intra": the first stage, "cross": every later one), how
an epoch's pseudo-labels are made (`pseudo_labels`, on rank 0) and which passes train on them (`plan`, on every
rank): a pass (`TrainingPass`) draws batches from its label space and trains one optimiser step per iteration with
its `Objective` (losses, then explicit memory updates). The loop in `reid.train` runs these calls and names no
method. Methods keep state across epochs only through `state_dict` (e.g. PCLHD's EMA teacher).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..pseudo_labels import PseudoLabels
from ..train_config import ClusterConfig

PHASES = ("intra", "cross")


def phase_of(stage_index: int) -> str:
    """The phase of the stage at `stage_index` in train.stages: the first stage is "intra", every later one "cross"."""
    return PHASES[0] if stage_index == 0 else PHASES[1]


@dataclass
class EpochContext:
    """What a method sees when it makes an epoch's pseudo-labels and memories.

    features: [N, D] clustering features of the training images (flip-averaged, L2-normalised per view, not again);
    view_features: [N, D] those of their translated views, when the method asked for them (`needs_view_features`);
    teacher_features: [N, D] the same features from the method's teacher, when asked (`needs_teacher_features`);
    is_ir: [N] bool; true_ids: [N] (the upper bounds only); seed: of this epoch's random draws; has_views: whether
    the run has translated views (`translated`).
    """

    features: torch.Tensor
    is_ir: np.ndarray
    true_ids: np.ndarray
    cluster: ClusterConfig
    temperature: float
    momentum: float
    stage_epoch: int
    seed: int
    device: torch.device
    has_views: bool = False
    view_features: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None

    def rows_of(self, modality: str) -> np.ndarray:
        """Indices [n] of the images of one modality ("vis" | "ir"), in record order."""
        return np.flatnonzero(self.is_ir if modality == "ir" else ~self.is_ir)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with this epoch's seed (+ offset), for a memory's random draws."""
        return torch.Generator().manual_seed(self.seed + offset)


@dataclass
class StepBatch:
    """A pass's batch after the forward pass.

    features: [B, D] L2-normalised (graph to the model); labels: [B] in the pass's label space (-1 never drawn);
    is_ir: [B] the stem each row went through; view_features: [V, D] the translated views' features and view_rows
    [V] the row of `features` each belongs to (when the pass trains on views); teacher_features: [B, D] the
    teacher's features of the same inputs, no graph (when the objective asks for them); update_batch: below.
    """

    features: torch.Tensor
    labels: torch.Tensor
    is_ir: torch.Tensor
    view_features: torch.Tensor | None = None
    view_rows: torch.Tensor | None = None
    teacher_features: torch.Tensor | None = None
    update_batch: StepBatch | None = None  # train.memory_update "in_backward": the detached batch of every rank the
    # memory updates read, so that each memory term's gradient reads the prototypes the references' backward has
    # moved by then (reid.methods.parts.prototypes_in_backward); None: every gradient against the step's prototypes

    def of_modality(self, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [b, D], labels [b]) of the rows of one modality."""
        rows = self.is_ir if modality == "ir" else ~self.is_ir
        return self.features[rows], self.labels[rows]


class Objective:
    """The losses of one pass and the memory updates that follow its optimiser step."""

    uses_views: bool = False  # its batches carry each image's translated view
    uses_teacher: bool = False  # its batches carry the teacher's features

    def loss(self, batch: StepBatch) -> dict[str, torch.Tensor]:
        """Named, weighted loss terms (scalars); the loop backpropagates their sum."""
        raise NotImplementedError

    def update(self, batch: StepBatch) -> None:
        """The memory updates with the (detached, all ranks') batch, after the optimiser step."""
        raise NotImplementedError


@dataclass
class TrainingPass:
    """One optimiser step per iteration on batches drawn from `labels` [N] (-1: never drawn; one label space:
    shared across modalities, or visible then infrared side by side) with `objective`."""

    labels: np.ndarray
    objective: Objective


@dataclass
class EpochPlan:
    """The passes of an epoch (each iteration runs them in order) and the pseudo-labels it reports (cluster
    quality against the true ids), with any numbers worth a line in metrics.jsonl (`notes`)."""

    passes: list[TrainingPass]
    report: PseudoLabels
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class NoOptions:
    """A method without options."""


class Method:
    """A USL-VI-ReID method: its options (`Options`, a dataclass: `method.options` in the config) and its rules
    per phase. Subclasses implement `pseudo_labels` and `plan`; the rest has defaults."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    summary: ClassVar[str] = ""  # one line for --help and the docs: what it does, after which code
    intra_stage_of: ClassVar[str | None] = None  # a method without options whose rules its first stage follows
    needs_identities: ClassVar[bool] = False  # trains on the true ids (the upper bound): refused on unlabelled data

    def __init__(self, options=None) -> None:
        self.options = options if options is not None else self.Options()

    # ---------------------------------------------------------------- what a phase needs and what it is

    def stage_rules(self, phase: str) -> dict:
        """{"name", "options"}: a method config whose `phase` trains exactly as this method's. Runs whose begun
        stages have equal rules may share them (the experiment runner's first stage, resuming under another
        method): `intra_stage_of` for the first stage when set, else this method with its options."""
        if phase == PHASES[0] and self.intra_stage_of is not None:
            return {"name": self.intra_stage_of, "options": {}}
        return {"name": self.name, "options": dataclasses.asdict(self.options)}

    def requires_views(self, phase: str) -> bool:
        """Whether `phase` cannot run without the translated views (it clusters them)."""
        return False

    def uses_views(self, phase: str, has_views: bool) -> bool:
        """Whether `phase` clusters or trains on the translated views when the run has them."""
        return self.requires_views(phase)

    def needs_view_features(self, phase: str) -> bool:
        return self.requires_views(phase)

    def needs_teacher_features(self, phase: str) -> bool:
        return False

    # ---------------------------------------------------------------- an epoch

    def pseudo_labels(self, phase: str, context: EpochContext) -> Any:
        """The epoch's labels (numpy arrays in a picklable object): computed on rank 0, broadcast to all."""
        raise NotImplementedError

    def plan(self, phase: str, context: EpochContext, labels: Any) -> EpochPlan:
        """The epoch's memories and passes from the features and the broadcast labels (on every rank)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- state across epochs

    def start_stage(self, phase: str, model: nn.Module) -> None:
        """Called at the first epoch of every stage, before its pseudo-labels."""

    def after_iteration(self, model: nn.Module) -> None:
        """Called after each iteration's passes (e.g. an EMA teacher's update)."""

    def teacher(self) -> nn.Module | None:
        """The model whose features `needs_teacher_features` asks for, and which objectives' teacher rows use."""
        return None

    def delivered_model(self, model: nn.Module) -> nn.Module:
        """The network the method evaluates and delivers (its checkpoint's "model"): the student by default."""
        return model

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (checkpoints load with weights_only=True)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore `state_dict()`; `model`: the student, already restored (e.g. to build a teacher like it)."""
