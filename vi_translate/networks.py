"""CycleGAN networks, built as in the reference (junyanz/pytorch-CycleGAN-and-pix2pix `networks.py`).

`ResnetGenerator` and `PatchDiscriminator` (the reference `NLayerDiscriminator`, the 70x70 PatchGAN) use
instance norm without affine parameters or running statistics, the reference's CycleGAN default, and the
reference's module layout, so their `state_dict` keys ("model.1.weight", "model.10.conv_block.1.weight", ...)
are the reference's: a reference generator trained with its CycleGAN defaults (no dropout, PyTorch >= 0.4)
loads into them as it is, and `vi_translate.import_reference` imports the others and writes a translator
checkpoint. The constructors call `init_weights`
(the reference `init_type="normal"`, gain 0.02), so a freshly built network is ready to train.

For PatchNCE (CUT, Park et al. 2020), `ResnetGenerator.encode` returns the outputs of chosen layers of the
generator's `model` (the encoder: the stem, the two downsamplings and the residual blocks), as CUT's
`ResnetGenerator.forward(input, layers, encode_only=True)` does, and `PatchSampleMLP` is CUT's `PatchSampleF`
(`netF mlp_sample`): one 2-layer MLP projection head per tapped layer, L2-normalised outputs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

PADDING_TYPES = ("reflect", "replicate", "zero")
DOWNSAMPLING = 2  # stride-2 convolutions in the generator: H and W must be divisible by 2**DOWNSAMPLING
STEM_LAYERS = 4  # reflection pad, 7x7 conv, norm, ReLU: model[0:4]
LAYERS_PER_DOWNSAMPLING = 3  # stride-2 conv, norm, ReLU
# CUT's --nce_layers 0,4,8,12,16 index its antialiased generator (conv, norm, ReLU, blur-downsample per stage), whose
# residual blocks start at 12; the same taps of ours (stride-2 convs, blocks start at 10): the reflection-padded input
# (0), the first and the second downsampling conv (4, 7), the first and the fifth residual block (10, 14).
CUT_NCE_LAYERS = (0, 4, 7, 10, 14)


def _require_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    """The reference's CycleGAN norm: no affine parameters, no running statistics."""
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """Initialise `module` in place as the reference `init_weights(init_type="normal")`; returns `module`.

    Conv / ConvTranspose / Linear weights ~ N(0, gain), their biases 0; BatchNorm2d weights ~ N(1, gain),
    biases 0. Instance norm here has no parameters. Draws from torch's global RNG (seed with torch.manual_seed).
    """
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain!r}")
    for submodule in module.modules():
        if isinstance(submodule, (nn.modules.conv._ConvNd, nn.Linear)):
            nn.init.normal_(submodule.weight, 0.0, gain)
            if submodule.bias is not None:
                nn.init.zeros_(submodule.bias)
        elif isinstance(submodule, nn.BatchNorm2d) and submodule.weight is not None:
            nn.init.normal_(submodule.weight, 1.0, gain)
            nn.init.zeros_(submodule.bias)
    return module


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements in `module` (only those with requires_grad when `trainable_only`)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class ResnetBlock(nn.Module):
    """Residual block: x + (pad, conv 3x3, IN, ReLU, pad, conv 3x3, IN)(x); [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, padding_type: str = "reflect") -> None:
        super().__init__()
        if padding_type not in PADDING_TYPES:
            raise ValueError(f"padding_type must be one of {PADDING_TYPES}, got {padding_type!r}")
        layers: list[nn.Module] = []
        for last in (False, True):
            conv_padding = 0
            if padding_type == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding_type == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            else:
                conv_padding = 1
            layers += [nn.Conv2d(channels, channels, kernel_size=3, padding=conv_padding, bias=True),
                       _instance_norm(channels)]
            if not last:
                layers.append(nn.ReLU(True))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The reference CycleGAN ResNet generator: [B, in_channels, H, W] -> [B, out_channels, H, W] in [-1, 1].

    c7s1-ngf, two stride-2 downsamplings (ngf -> 2 ngf -> 4 ngf), `n_blocks` residual blocks (the reference
    uses 9 at 256x256, 6 at 128x128), two transposed-conv upsamplings, c7s1-out_channels and tanh.
    H and W must be divisible by 4. Weights are initialised by `init_weights(self, init_gain)`.
    `padding_type` ("reflect", "replicate" or "zero") applies inside the residual blocks, as in the reference.
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9, *,
                 padding_type: str = "reflect", init_gain: float = 0.02) -> None:
        super().__init__()
        _require_int("in_channels", in_channels, 1)
        _require_int("out_channels", out_channels, 1)
        _require_int("ngf", ngf, 1)
        _require_int("n_blocks", n_blocks, 0)
        self.in_channels, self.out_channels, self.n_blocks = in_channels, out_channels, n_blocks
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, kernel_size=7, bias=True),
                                   _instance_norm(ngf), nn.ReLU(True)]
        for i in range(DOWNSAMPLING):
            channels = ngf * 2 ** i
            layers += [nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=True),
                       _instance_norm(channels * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 2 ** DOWNSAMPLING, padding_type) for _ in range(n_blocks)]
        for i in range(DOWNSAMPLING):
            channels = ngf * 2 ** (DOWNSAMPLING - i)
            layers += [nn.ConvTranspose2d(channels, channels // 2, kernel_size=3, stride=2, padding=1,
                                          output_padding=1, bias=True),
                       _instance_norm(channels // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self, init_gain)

    def forward(self, x: Tensor) -> Tensor:
        """[B, in_channels, H, W] -> [B, out_channels, H, W], H and W divisible by 4."""
        factor = 2 ** DOWNSAMPLING
        if x.dim() != 4 or x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(f"ResnetGenerator input must be [B, C, H, W] with H and W divisible by {factor}, "
                             f"got shape {tuple(x.shape)}")
        return self.model(x)

    @property
    def encoder_layers(self) -> int:
        """How many leading layers of `model` form the encoder (stem, downsamplings, residual blocks): 10 + n_blocks.

        model[0] reflection pad (the padded input: in_channels, H+6 x W+6), model[1:4] 7x7 conv, norm, ReLU
        (ngf, H x W), model[4:7] stride-2 conv, norm, ReLU (2 ngf, H/2 x W/2), model[7:10] the second (4 ngf,
        H/4 x W/4), model[10 + i] residual block i (4 ngf, H/4 x W/4).
        """
        return STEM_LAYERS + LAYERS_PER_DOWNSAMPLING * DOWNSAMPLING + self.n_blocks

    def check_encoder_layers(self, layers: Sequence[int]) -> list[int]:
        """`layers` as a list after checking it: non-empty, strictly increasing indices into the encoder."""
        layers = list(layers)
        if not layers or any(isinstance(i, bool) or not isinstance(i, int) for i in layers):
            raise ValueError(f"layers must be a non-empty list of integers, got {layers!r}")
        if any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 or layers[-1] >= self.encoder_layers:
            raise ValueError(f"layers must be strictly increasing indices into the encoder, 0 .. "
                             f"{self.encoder_layers - 1} with {self.n_blocks} residual blocks, got {layers!r}")
        return layers

    def encoder_channels(self, layers: Sequence[int]) -> list[int]:
        """The channel count of each tapped layer's output (in_channels, ngf, 2 ngf or 4 ngf)."""
        channels, by_layer = self.in_channels, []
        for layer in self.model[:self.encoder_layers]:
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            by_layer.append(channels)
        return [by_layer[i] for i in self.check_encoder_layers(layers)]

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """The outputs of `model[i]` for i in `layers` (strictly increasing, < `encoder_layers`), running the model
        only as far as the last of them: [B, in_channels, H, W] -> [[B, C_i, H_i, W_i], ...] (CUT's
        `ResnetGenerator.forward(input, layers, encode_only=True)`)."""
        layers = self.check_encoder_layers(layers)
        features = []
        for index, layer in enumerate(self.model[:layers[-1] + 1]):
            x = layer(x)
            if index in layers:
                features.append(x)
        return features


class PatchSampleMLP(nn.Module):
    """CUT's `PatchSampleF` with `use_mlp` (its default `--netF mlp_sample`): one head `mlp_<i>` per tapped layer,
    Linear(C_i, units), ReLU, Linear(units, units), whose output is L2-normalised (x / (||x|| + 1e-7)).

    CUT builds the heads at the first forward pass from the features' channels and initialises them with its default
    `--init_type xavier`, gain 0.02 (biases 0); here the channels are given (`ResnetGenerator.encoder_channels`) and
    the same initialisation is drawn from torch's global RNG.
    """

    def __init__(self, in_channels: Sequence[int], units: int = 256, *, init_gain: float = 0.02) -> None:
        super().__init__()
        in_channels = list(in_channels)
        if not in_channels:
            raise ValueError("in_channels must name at least one layer")
        for i, channels in enumerate(in_channels):
            _require_int(f"in_channels[{i}]", channels, 1)
        _require_int("units", units, 1)
        self.in_channels, self.units = in_channels, units
        for i, channels in enumerate(in_channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(channels, units), nn.ReLU(), nn.Linear(units, units)))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight, gain=init_gain)
                nn.init.zeros_(module.bias)

    def __len__(self) -> int:
        return len(self.in_channels)

    def forward(self, features: Sequence[Tensor], patch_ids: Sequence[Tensor]) -> list[Tensor]:
        """features: per layer [B, C_i, H_i, W_i]; patch_ids: per layer [P_i] indices into H_i * W_i (row-major),
        the same for every image. Returns per layer [B, P_i, units], each row L2-normalised."""
        if len(features) != len(self) or len(patch_ids) != len(self):
            raise ValueError(f"expected {len(self)} feature maps and patch id sets, got {len(features)} and "
                             f"{len(patch_ids)}")
        projected = []
        for i, (feature, ids) in enumerate(zip(features, patch_ids)):
            if feature.dim() != 4 or feature.shape[1] != self.in_channels[i]:
                raise ValueError(f"features[{i}] must be [B, {self.in_channels[i]}, H, W], got {tuple(feature.shape)}")
            samples = feature.flatten(2)[:, :, ids.to(feature.device)].transpose(1, 2)  # [B, P, C]
            rows = getattr(self, f"mlp_{i}")(samples)
            if rows.dtype in (torch.float16, torch.bfloat16):  # under autocast: normalise in float32
                rows = rows.float()
            projected.append(l2_normalise(rows))
        return projected


def l2_normalise(x: Tensor, eps: float = 1e-7) -> Tensor:
    """x / (||x||_2 + eps) along the last dimension (CUT's `Normalize(2)`, eps 1e-7)."""
    return x / (x.pow(2).sum(-1, keepdim=True).pow(0.5) + eps)


class PatchDiscriminator(nn.Module):
    """The reference PatchGAN (`NLayerDiscriminator`; 70x70 receptive field with n_layers=3).

    [B, in_channels, H, W] -> [B, 1, h, w] patch logits (no sigmoid); 256x256 gives 30x30, 256x128 gives 30x14.
    Weights are initialised by `init_weights(self, init_gain)`.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, *, init_gain: float = 0.02) -> None:
        super().__init__()
        _require_int("in_channels", in_channels, 1)
        _require_int("ndf", ndf, 1)
        _require_int("n_layers", n_layers, 1)
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, True)]
        channels = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            next_channels = ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(channels, next_channels, kernel_size=4, stride=stride, padding=1, bias=True),
                       _instance_norm(next_channels), nn.LeakyReLU(0.2, True)]
            channels = next_channels
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self, init_gain)

    def forward(self, x: Tensor) -> Tensor:
        """[B, in_channels, H, W] -> [B, 1, h, w] patch logits."""
        return self.model(x)
