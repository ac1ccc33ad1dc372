"""The config schema of `vireid train CONFIG [key=value ...]`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .config import DataConfig, ModelConfig, RuntimeConfig, check_choice, check_positive

STRATEGIES = ("joint", "per_modality_hungarian", "none", "oracle")
UNIFY = ("vis", "ir", "both", "mean")


@dataclass
class AugmentConfig:
    """Training augmentation: pad + random crop, flip, random erasing; CAJ channel augmentation."""

    pad: int = 10
    flip: bool = True
    erasing: float = 0.5
    channel_augment: bool = False  # CAJ channel exchange / adaptive grey / channel erasing
    on_device: Optional[bool] = None  # random part on the whole batch on the training device; None: on CUDA


@dataclass
class ClusterConfig:
    """Pseudo-labels: k-reciprocal Jaccard + DBSCAN (cluster-contrast's recipe)."""

    method: str = "dbscan"
    k1: int = 30
    k2: int = 6
    eps: float = 0.6
    min_samples: int = 4
    unify: str = "both"  # joint strategy: the DM2C-style mixed-modal space
    center: bool = False  # joint strategy: centre each modality group of the mixed-modal features
    association: str = "hungarian"  # per_modality_hungarian: hungarian | sinkhorn

    def __post_init__(self) -> None:
        check_choice("cluster.unify", self.unify, UNIFY)
        check_choice("cluster.association", self.association, ("hungarian", "sinkhorn"))


@dataclass
class ReIDTrainConfig:
    """The USL loop: per epoch extract -> cluster -> memory -> train `iterations` steps."""

    strategy: str = "joint"  # joint | per_modality_hungarian | none | oracle (true ids: the upper bound)
    epochs: int = 50
    iterations: int = 200  # optimiser steps per epoch
    num_identities: int = 16  # P pseudo-identities per batch
    num_instances: int = 16  # K images per identity and modality
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    step_size: int = 20  # step decay of the learning rate every `step_size` epochs
    gamma: float = 0.1
    temperature: float = 0.05
    momentum: float = 0.1
    view_weight: float = 1.0  # joint: cluster NCE of the translated views (they carry the pseudo-label)
    cross_view_weight: float = 1.0  # joint: instance NCE, an image and its translation as the positive pair
    hard_dynamic_from: int = 10  # PCLHD: epoch from which hard and dynamic prototypes join
    hard_dynamic_weight: float = 0.5  # PCLHD's lambda
    max_epochs: Optional[int] = None  # stop early (quick runs)
    preload_images: bool = False  # decode + resize every training image (and view) once, keep them in memory
    # (N x 3 x H x W bytes) and augment whole batches (as augment.on_device): small datasets, small networks

    def __post_init__(self) -> None:
        check_choice("train.strategy", self.strategy, STRATEGIES)
        check_positive("train", self, ("epochs", "iterations", "num_identities", "num_instances", "step_size"))


@dataclass
class EvalConfig:
    """Evaluation during training, under the dataset's protocol."""

    every: int = 5  # epochs (the last epoch is always evaluated)
    trials: int = 10
    settings: Optional[list[str]] = None  # default: every setting of the dataset
    batch_size: int = 64


@dataclass
class ReIDConfig:
    """Everything `vireid train` reads."""

    data: DataConfig = field(default_factory=DataConfig)
    translated: Optional[str] = None  # OUT of `vi-translate translate`: each image's cross-modal view
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    train: ReIDTrainConfig = field(default_factory=ReIDTrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/reid"
