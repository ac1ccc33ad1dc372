"""The config schema of `vireid pretrain CONFIG [key=value ...]`: a labelled start for a backbone, the role ImageNet
weights play for the references, trained on the visible images of a dataset that is not the benchmark's task."""
from __future__ import annotations

from dataclasses import dataclass, field

from .config import ConfigError, DataConfig, ModelConfig, RuntimeConfig, check_positive


@dataclass
class PretrainAugmentConfig:
    """Augmentation of the visible images: black padding + random crop, flip, random erasing, colour jitter
    (`reid.data.transforms.gpu_augment` on whole batches) and random greyscale; no channel exchange."""

    pad: int = 2
    flip: bool = True
    erasing: float = 0.5
    color_jitter: float = 0.0  # ColorJitter(c, c, c, c) on every image (c in [0, 0.5])
    grayscale: float = 0.0  # probability of an image's luminance grey (ITU-R 601) in all three channels

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ConfigError(f"augment.pad must be >= 0, got {self.pad}")
        for key in ("erasing", "grayscale"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"augment.{key} must lie in [0, 1], got {getattr(self, key)}")
        if not 0.0 <= self.color_jitter <= 0.5:
            raise ConfigError(f"augment.color_jitter must lie in [0, 0.5] (the hue range), got {self.color_jitter}")


@dataclass
class PretrainTrainConfig:
    """Identity classification: a bias-free linear classifier on the BN-neck feature, cross-entropy with label
    smoothing, Adam with a linear warm-up and a cosine decay to 0, batches of images drawn uniformly."""

    steps: int = 6000
    batch_size: int = 64
    lr: float = 2.0e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 300
    label_smoothing: float = 0.1
    log_every: int = 100  # a metrics.jsonl line every this many steps
    checkpoint_every: int = 1000  # checkpoints/last.pt every this many steps (and at the end)

    def __post_init__(self) -> None:
        check_positive("train", self, ("steps", "batch_size", "log_every", "checkpoint_every"))
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"train.label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")


@dataclass
class PretrainConfig:
    """Everything `vireid pretrain` reads. `data`: a dataset with identities, of which the visible training images
    are used (never an infrared image, never a test image); `model.pretrained` must stay None."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: PretrainAugmentConfig = field(default_factory=PretrainAugmentConfig)
    train: PretrainTrainConfig = field(default_factory=PretrainTrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/pretrain"

    def __post_init__(self) -> None:
        if self.model.pretrained is not None:
            raise ConfigError(f"model.pretrained must be null for vireid pretrain (it trains the start itself), got "
                              f"{self.model.pretrained!r}")
        if self.data.evaluate_on != "test":
            raise ConfigError("data.evaluate_on must be test for vireid pretrain (the held-out check uses the test ids "
                              "of the pretraining population)")
