"""The config schema of `vireid train CONFIG [key=value ...]`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .cluster import METHODS as CLUSTER_METHODS
from .config import ConfigError, DataConfig, ModelConfig, RuntimeConfig, check_choice, check_positive

UNIFY = ("vis", "ir", "both", "mean")
NEED_NUM_CLUSTERS = ("kmeans", "spectral")  # the clusterers that take a number of clusters
MEMORY_UPDATES = ("after_step", "in_backward")  # train.memory_update


@dataclass
class AugmentConfig:
    """Training augmentation: pad + random crop, flip, channel random erasing; CAJ (channel exchange, adaptive grey)."""

    pad: int = 10
    flip: bool = True
    erasing: float = 0.5  # CAJ's ChannelRandomErasing probability
    caj: bool = True  # CAJ as ADCA / PGM / PCLHD: every visible image is also trained as a ChannelExchange(gray=2)
    # copy beside its colour copy (same label), infrared images get ChannelAdapGray(0.5)
    color_jitter: float = 0.0  # PGM: ColorJitter(c, c, c, c) on the channel-exchanged copies (PGM: 0.5)
    on_device: Optional[bool] = None  # random part on the whole batch on the training device; None: on CUDA

    def __post_init__(self) -> None:
        if not 0.0 <= self.color_jitter <= 0.5:
            raise ConfigError(f"augment.color_jitter must lie in [0, 0.5] (the hue range), got {self.color_jitter}")


@dataclass
class ClusterConfig:
    """Pseudo-labels: k-reciprocal Jaccard + DBSCAN (cluster-contrast's recipe), or k-means / spectral / infomap."""

    method: str = "dbscan"  # dbscan | kmeans | spectral | infomap (reid.cluster.cluster_labels)
    k1: int = 30
    k2: int = 6
    eps: float = 0.6  # dbscan
    min_samples: int = 4  # dbscan
    num_clusters: Optional[int] = None  # kmeans and spectral (required): clusters per clustering, i.e. per
    # modality for per-modality clusters, over both modalities for joint's mixed-modal and PCLHD's "all" clusters
    unify: str = "both"  # joint's mixed-modal clusters: the DM2C-style mixed-modal space
    center: bool = False  # joint's mixed-modal clusters: centre each modality group of the mixed-modal features

    def __post_init__(self) -> None:
        check_choice("cluster.method", self.method, CLUSTER_METHODS)
        check_choice("cluster.unify", self.unify, UNIFY)
        check_positive("cluster", self, ("k1", "k2", "min_samples"))
        if self.method == "dbscan" and not 0.0 < self.eps < 1.0:
            raise ConfigError(f"cluster.eps must lie in (0, 1) for dbscan on the Jaccard distance, got {self.eps}")
        self._check_num_clusters()

    def _check_num_clusters(self) -> None:
        if self.num_clusters is not None:
            check_positive("cluster", self, ("num_clusters",))
        elif self.method in NEED_NUM_CLUSTERS:
            raise ConfigError(f"cluster.num_clusters is required with cluster.method={self.method} (it sets how "
                              "many pseudo-identities each clustering makes), e.g. cluster.num_clusters=200")


@dataclass
class StageConfig:
    """A span of epochs with its own optimiser and learning-rate schedule; what it trains on is the method's rule for
    its phase (the first stage: "intra", every later one: "cross"; see reid.methods).

    The references (ADCA, PGM, PCLHD) train stage 1 intra-modality, then start stage 2 from its weights with a fresh
    optimiser and add their cross-modal rules.
    """

    epochs: int = 50  # 0 skips the stage
    restart_optimizer: bool = True  # a fresh optimiser and schedule at the stage's first epoch
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    step_size: int = 20  # the learning rate times `gamma` every `step_size` epochs of the stage
    gamma: float = 0.1
    num_identities: Optional[int] = None  # P of the infrared half in this stage (None: train.num_identities)
    vis_identities: Optional[int] = None  # P of the visible half in this stage (None: train.vis_identities)

    def check(self, key: str) -> None:
        """Raise ConfigError naming `key`.<field> for a value out of range (`key`: train.stages.<name>)."""
        if self.epochs < 0:
            raise ConfigError(f"{key}.epochs must be >= 0, got {self.epochs}")
        check_positive(key, self, ("step_size",))
        for name in ("num_identities", "vis_identities"):
            if getattr(self, name) is not None:
                check_positive(key, self, (name,))


def default_stages() -> dict[str, StageConfig]:
    """The references' schedule: 50 epochs intra-modality, then 50 cross-modal epochs from a fresh optimiser."""
    return {"intra": StageConfig(epochs=50), "cross": StageConfig(epochs=50)}


@dataclass
class MethodConfig:
    """Which method trains (reid.methods: cluster_contrast | adca | pgm | pclhd | joint | oracle) and its options
    (its Options dataclass; unknown keys are refused, missing ones take the method's defaults: `resolved`)."""

    name: str = "joint"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resolved_options()  # checks the name and the options

    def resolved_options(self) -> dict[str, Any]:
        """Every option of the method, the defaults filled in (ConfigError for an unknown key or a bad value)."""
        from .methods import resolve_options  # the methods import this module
        return resolve_options(self.name, self.options)


@dataclass
class ReIDTrainConfig:
    """The USL loop: stages of epochs; per epoch extract -> cluster -> memory -> train `iterations` steps."""

    stages: dict[str, StageConfig] = field(default_factory=default_stages)  # run in this order; records name them
    iterations: int = 200  # optimiser steps per epoch
    num_identities: int = 16  # P pseudo-identities in the infrared half of a batch
    vis_identities: Optional[int] = 8  # in the visible half (None: num_identities); the references draw 8 x K
    # visible images, each trained twice with CAJ (colour and channel-exchanged), beside 16 x K infrared images
    num_instances: int = 16  # K images per identity, camera-aware (reid.data.samplers.CameraAwareSampler)
    temperature: float = 0.05
    momentum: float = 0.1
    max_epochs: Optional[int] = None  # stop after this many epochs in all (quick runs; rerun without it to go on)
    preload_images: bool = False  # decode + resize every training image (and view) once, keep them in memory
    # (N x 3 x H x W bytes) and augment whole batches (as augment.on_device): small datasets, small networks
    memory_update: str = "after_step"  # where one memory serves two loss terms, which prototypes each term's
    # gradient reads: "after_step" those of the step's start (the memories update after the optimiser step);
    # "in_backward" the released code's (memories updated inside the backward, a term's gradient reading what the
    # terms the backward ran before it moved: reid.methods.parts). The memories end each step equal either way.

    def __post_init__(self) -> None:
        check_positive("train", self, ("iterations", "num_identities", "num_instances"))
        check_choice("train.memory_update", self.memory_update, MEMORY_UPDATES)
        if self.vis_identities is not None:
            check_positive("train", self, ("vis_identities",))
        for name, stage in self.stages.items():
            stage.check(f"train.stages.{name}")
        if sum(stage.epochs for stage in self.stages.values()) < 1:
            raise ConfigError(f"train.stages: at least one epoch is needed, got {dict(self.stages)}")

    @property
    def epochs(self) -> int:
        """Epochs over all stages."""
        return sum(stage.epochs for stage in self.stages.values())

    def stage_at(self, epoch: int) -> tuple[str, StageConfig, int]:
        """(name, stage, epoch within the stage) of the run's `epoch`-th epoch (0-based)."""
        start = 0
        for name, stage in self.stages.items():
            if epoch < start + stage.epochs:
                return name, stage, epoch - start
            start += stage.epochs
        raise ValueError(f"epoch {epoch} is past the last stage ({self.epochs} epochs in all)")


@dataclass
class EvalConfig:
    """Evaluation during training, under the dataset's protocol."""

    every: int = 5  # epochs (the last epoch is always evaluated)
    trials: int = 10
    settings: Optional[list[str]] = None  # default: every setting of the dataset
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_positive("eval", self, ("every", "trials", "batch_size"))


@dataclass
class ReIDConfig:
    """Everything `vireid train` reads."""

    data: DataConfig = field(default_factory=DataConfig)
    translated: Optional[str] = None  # OUT of `vi-translate translate`: each image's cross-modal view
    method: MethodConfig = field(default_factory=MethodConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    train: ReIDTrainConfig = field(default_factory=ReIDTrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/reid"
