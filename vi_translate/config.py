"""The translator's config schema (`vi-translate train CONFIG [key=value ...]`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from reid.config import ConfigError, DataConfig, RuntimeConfig, check_choice, check_positive

GAN_MODES = ("lsgan", "vanilla", "hinge")


@dataclass
class ImageConfig:
    """Person-shaped images: load at (load_height, load_width), random-crop (crop_height, crop_width)."""

    load_height: int = 286
    load_width: int = 143
    crop_height: int = 256
    crop_width: int = 128
    flip: bool = True
    ir_channels: int = 3  # 1: infrared as one grey channel; 3: as stored (three equal channels)

    def __post_init__(self) -> None:
        check_choice("image.ir_channels", self.ir_channels, (1, 3))
        if self.crop_height > self.load_height or self.crop_width > self.load_width:
            raise ConfigError(f"image: the crop ({self.crop_height}x{self.crop_width}) must fit in the loaded "
                              f"image ({self.load_height}x{self.load_width})")
        if self.crop_height % 4 or self.crop_width % 4:
            raise ConfigError(f"image: crop sizes must be multiples of 4 (two stride-2 stages), got "
                              f"{self.crop_height}x{self.crop_width}")


@dataclass
class NetworkConfig:
    """ResnetGenerator / PatchDiscriminator sizes (the reference: ngf = ndf = 64, 9 blocks, 3 layers)."""

    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    n_layers_d: int = 3


@dataclass
class TranslatorTrainConfig:
    """The CycleGAN recipe: Adam 2e-4 (beta1 0.5), constant then linear decay to zero, per epoch."""

    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0  # each way
    lambda_identity: float = 0.5  # times lambda_cycle
    pool_size: int = 50
    lr: float = 2e-4
    beta1: float = 0.5
    batch_size: int = 1
    epochs: int = 100  # at the initial learning rate
    epochs_decay: int = 100  # then linearly to zero
    max_steps: Optional[int] = None  # stop after this many steps in all (quick runs)
    log_every: int = 50  # steps between metrics lines
    sample_every: int = 500  # steps between sample grids and loss-curve plots
    checkpoint_every: int = 1000  # steps between checkpoints (one is also written at the end)
    num_samples: int = 4  # images per modality in the sample grid

    def __post_init__(self) -> None:
        check_choice("train.gan_mode", self.gan_mode, GAN_MODES)
        check_positive("train", self, ("batch_size", "log_every", "sample_every", "checkpoint_every", "num_samples"))

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.epochs_decay


@dataclass
class TranslatorConfig:
    """Everything `vi-translate train` reads."""

    data: DataConfig = field(default_factory=DataConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    model: NetworkConfig = field(default_factory=NetworkConfig)
    train: TranslatorTrainConfig = field(default_factory=TranslatorTrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/translator"
