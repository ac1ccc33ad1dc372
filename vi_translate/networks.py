"""CycleGAN networks, built as in the reference (junyanz/pytorch-CycleGAN-and-pix2pix `networks.py`).

`ResnetGenerator` and `PatchDiscriminator` (the reference `NLayerDiscriminator`, the 70x70 PatchGAN) use
instance norm without affine parameters or running statistics, the reference's CycleGAN default, and the
reference's module layout, so their `state_dict` keys ("model.1.weight", "model.10.conv_block.1.weight", ...)
are the reference's: a reference generator trained with its CycleGAN defaults (no dropout, PyTorch >= 0.4)
loads into them as it is, and `vi_translate.import_reference` imports the others and writes a translator
checkpoint. The constructors call `init_weights`
(the reference `init_type="normal"`, gain 0.02), so a freshly built network is ready to train.
"""
from __future__ import annotations

from torch import Tensor, nn

PADDING_TYPES = ("reflect", "replicate", "zero")
DOWNSAMPLING = 2  # stride-2 convolutions in the generator: H and W must be divisible by 2**DOWNSAMPLING


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
        self.in_channels, self.out_channels = in_channels, out_channels
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
