"""Plain-conv two-stream backbones for tests and the CPU benchmark: `tiny` (about 61 thousand parameters, 64-d
features) and `small` (about 165 thousand parameters, 128-d features: the embedded benchmark's network; see
`benchmarks/bench_reid_train.py --arch small` for its speed)."""
from __future__ import annotations

import os
from collections import OrderedDict

from torch import nn

from .two_stream import TwoStreamNet
from .weights import load_pretrained

# (stem channels, ((output channels, stride) of each shared stage, ...)) per network
WIDTHS = {"tiny": (16, ((32, 2), (64, 2), (64, 1))),
          "small": (24, ((48, 2), (96, 2), (128, 1)))}


def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU: [B, Cin, H, W] -> [B, Cout, H/stride, W/stride]."""
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels), relu=nn.ReLU(inplace=True)))


def plain_trunk(in_channels: int, widths: tuple[tuple[int, int], ...]) -> nn.Sequential:
    """conv_bn_relu stages of (output channels, stride): [B, C, H, W] -> [B, widths[-1][0], H / prod(strides), ...]."""
    channels, stages = in_channels, []
    for out_channels, stride in widths:
        stages.append(conv_bn_relu(channels, out_channels, stride))
        channels = out_channels
    return nn.Sequential(*stages)


def plain_two_stream(size: str = "tiny", *, non_local: bool = False, pretrained: str | os.PathLike | None = None,
                     gem_p: float = 3.0) -> TwoStreamNet:
    """Stems of one conv_bn_relu (stride 2), the shared conv_bn_relu stages of WIDTHS[size], GeM, BN neck.

    tiny: 16 -> 32, 64, 64 channels (64-d); small: 24 -> 48, 96, 128 (128-d); both [B, 3, H, W] -> H/8 x W/8 maps.
    pretrained: a `vireid pretrain` backbone file, or "synthetic-visible" (the start shipped for `small`); its stem
    goes into both stems, its trunk into the trunk (`reid.models.weights.load_pretrained`).
    """
    if size not in WIDTHS:
        raise ValueError(f"unknown plain network {size!r}; expected one of {sorted(WIDTHS)}")
    if non_local:
        raise ValueError(f"the {size} backbone has no non-local blocks; use non_local=False")
    stem_channels, widths = WIDTHS[size]
    model = TwoStreamNet(conv_bn_relu(3, stem_channels, stride=2), plain_trunk(stem_channels, widths),
                         feature_dim=widths[-1][0], gem_p=gem_p)
    if pretrained is not None:
        load_pretrained(model, size, pretrained)
    return model


def tiny_two_stream(**options) -> TwoStreamNet:
    """The tiny network (see plain_two_stream)."""
    return plain_two_stream("tiny", **options)
