"""Two-stream torchvision ResNets as in AGW / ADCA / PGM / GUR / PCLHD: the stem (conv1, bn1, relu,
maxpool) per modality, layer1..layer4 shared with the last stride 1, optional AGW non-local blocks."""
from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torchvision
from torch import nn

from .nonlocal_block import AGW_NON_LOCAL_COUNTS, NonLocal, last_block_indices
from .two_stream import TwoStreamNet
from .weights import load_pretrained

RESNETS = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}
LAYERS = ("layer1", "layer2", "layer3", "layer4")


class ResNetTrunk(nn.Module):
    """layer1..layer4 of a torchvision ResNet, each followed at the chosen block indices by a
    non-local block (`non_local[layer][str(index)]`). [B, 64, H/4, W/4] -> [B, D, H/16, W/16]
    with the last stride 1 (288x144 -> 18x9)."""

    def __init__(self, resnet: torchvision.models.ResNet, non_local_counts: dict[str, int] | None = None) -> None:
        super().__init__()
        for name in LAYERS:
            setattr(self, name, getattr(resnet, name))
        self.non_local = nn.ModuleDict()
        for name, count in (non_local_counts or {}).items():
            layer = getattr(self, name)
            channels = _output_channels(layer)
            indices = last_block_indices(len(layer), count, name)
            if indices:
                self.non_local[name] = nn.ModuleDict({str(i): NonLocal(channels) for i in indices})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in LAYERS:
            blocks = self.non_local[name] if name in self.non_local else {}
            for index, block in enumerate(getattr(self, name)):
                x = block(x)
                if str(index) in blocks:
                    x = blocks[str(index)](x)
        return x


def resnet_stem(resnet: torchvision.models.ResNet) -> nn.Sequential:
    """conv1 (7x7 stride 2, 64), bn1, relu, maxpool of `resnet`: [B, 3, H, W] -> [B, 64, H/4, W/4]."""
    return nn.Sequential(OrderedDict(conv1=resnet.conv1, bn1=resnet.bn1, relu=resnet.relu, maxpool=resnet.maxpool))


def set_last_stride_one(layer: nn.Sequential) -> None:
    """Give the first block of `layer` stride 1 (its strided conv and its downsample conv)."""
    for module in layer[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)


def two_stream_resnet(depth: str, *, non_local: bool = False, pretrained: str | os.PathLike | None = None,
                      gem_p: float = 3.0) -> TwoStreamNet:
    """A two-stream `depth` ("resnet18" | "resnet50") with the last stride 1, AGW non-local blocks when
    `non_local`, and a start from `pretrained` ("imagenet", a torchvision .pth path or a `vireid pretrain` backbone
    file; None = random init: `reid.models.weights.load_pretrained`)."""
    if depth not in RESNETS:
        raise ValueError(f"unknown ResNet depth {depth!r}; expected one of {sorted(RESNETS)}")
    resnet = RESNETS[depth](weights=None)
    set_last_stride_one(resnet.layer4)
    trunk = ResNetTrunk(resnet, AGW_NON_LOCAL_COUNTS if non_local else None)
    model = TwoStreamNet(resnet_stem(resnet), trunk, feature_dim=_output_channels(resnet.layer4), gem_p=gem_p)
    if pretrained is not None:
        load_pretrained(model, depth, pretrained)
    return model


def _output_channels(layer: nn.Sequential) -> int:
    """Channels out of a ResNet layer: out_channels of its last block's last BatchNorm."""
    return [m for m in layer[-1].modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features
