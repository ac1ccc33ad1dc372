"""The translator's config schema (`vi-translate train CONFIG [key=value ...]`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from reid.config import ConfigError, DataConfig, RuntimeConfig, check_choice, check_positive

GAN_MODES = ("lsgan", "vanilla", "hinge")
STRUCTURE_KINDS = ("ssim", "edges")
# CUT's --nce_layers 0,4,8,12,16, as the same taps of this generator (`vi_translate.networks.CUT_NCE_LAYERS`): the
# padded input, the two downsampling convs, the first and the fifth residual block (needs n_blocks >= 5)
DEFAULT_NCE_LAYERS = (0, 4, 7, 10, 14)


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
    """The CycleGAN recipe: Adam 2e-4 (beta1 0.5), constant then linear decay to zero, per epoch.

    Structure-keeping options (all off by default, which is the reference recipe): PatchNCE between each generator's
    input and output (CUT; lambda_nce > 0), a structure term (lambda_structure > 0), and lambda_cycle 0 for a
    one-sided translator without cycle terms (as CUT).
    """

    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0  # each way; 0: no reconstructions, no cycle (nor identity) terms
    lambda_identity: float = 0.5  # times lambda_cycle
    lambda_nce: float = 0.0  # CUT's lambda_NCE (1 there); 0: off, no heads are built
    nce_layers: list[int] = field(default_factory=lambda: list(DEFAULT_NCE_LAYERS))  # indices into generator.model
    nce_patches: int = 256  # CUT's num_patches: locations per layer
    nce_temperature: float = 0.07  # CUT's nce_T
    nce_idt: bool = False  # CUT's nce_idt: also NCE(y, G(y)) on the target domain; each term then weighs 1/2
    lambda_structure: float = 0.0  # 0: off
    structure: str = "ssim"  # "ssim": 1 - SSIM of the greys; "edges": L1 of normalised Sobel magnitudes
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
        check_positive("train", self, ("batch_size", "log_every", "sample_every", "checkpoint_every", "num_samples",
                                       "nce_patches"))
        for key in ("lambda_cycle", "lambda_identity", "lambda_nce", "lambda_structure"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if not self.nce_temperature > 0:
            raise ConfigError(f"train.nce_temperature must be > 0, got {self.nce_temperature}")
        layers = list(self.nce_layers)
        if not layers or layers[0] < 0 or any(b <= a for a, b in zip(layers, layers[1:])):
            raise ConfigError(f"train.nce_layers must be a non-empty, strictly increasing list of layer indices >= 0 "
                              f"(CUT: 0,4,8,12,16; here {list(DEFAULT_NCE_LAYERS)}), got {layers}")
        check_choice("train.structure", self.structure, STRUCTURE_KINDS)

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

    def __post_init__(self) -> None:
        encoder_layers = 10 + self.model.n_blocks  # `ResnetGenerator.encoder_layers`
        if self.train.lambda_nce > 0 and max(self.train.nce_layers) >= encoder_layers:
            raise ConfigError(f"train.nce_layers: {list(self.train.nce_layers)} reaches past the generator's encoder, "
                              f"layers 0 .. {encoder_layers - 1} with model.n_blocks={self.model.n_blocks} (0 padded "
                              f"input, 4 and 7 the downsampling convs, 10 + i residual block i)")
