"""A tiny two-stream backbone for tests and the CPU demo (about 61 thousand parameters, 64-d features)."""
from __future__ import annotations

import os
from collections import OrderedDict

from torch import nn

from .two_stream import TwoStreamNet

STEM_CHANNELS = 16
STAGES = ((32, 2), (64, 2), (64, 1))  # (output channels, stride) of the shared stages


def conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """3x3 conv (no bias) + BatchNorm + ReLU: [B, Cin, H, W] -> [B, Cout, H/stride, W/stride]."""
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        bn=nn.BatchNorm2d(out_channels), relu=nn.ReLU(inplace=True)))


def tiny_trunk() -> nn.Sequential:
    """[B, 16, H/2, W/2] -> [B, 64, H/8, W/8]."""
    channels, stages = STEM_CHANNELS, []
    for out_channels, stride in STAGES:
        stages.append(conv_bn_relu(channels, out_channels, stride))
        channels = out_channels
    return nn.Sequential(*stages)


def tiny_two_stream(*, non_local: bool = False, pretrained: str | os.PathLike | None = None,
                    gem_p: float = 3.0) -> TwoStreamNet:
    """Stems of one conv_bn_relu to 16 channels (stride 2), three shared stages, GeM, BN neck; 64-d."""
    if non_local:
        raise ValueError("the tiny backbone has no non-local blocks; use non_local=False")
    if pretrained is not None:
        raise ValueError(f"the tiny backbone has no pretrained weights (got pretrained={pretrained!r}); use None")
    return TwoStreamNet(conv_bn_relu(3, STEM_CHANNELS, stride=2), tiny_trunk(), feature_dim=STAGES[-1][0],
                        gem_p=gem_p)
