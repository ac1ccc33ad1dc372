"""AGW's non-local block and where AGW puts it in a ResNet."""
from __future__ import annotations

import torch
from torch import nn

# AGW's `non_layers = [0, 2, 3, 0]`: blocks after the last 2 blocks of layer2 and the last 3 of layer3.
AGW_NON_LOCAL_COUNTS = {"layer1": 0, "layer2": 2, "layer3": 3, "layer4": 0}


class NonLocal(nn.Module):
    """Embedded-dot-product non-local block with 1/N scaling and a residual branch W (1x1 conv + BN)
    whose BN weight and bias start at 0, so a new block is the identity.

    x [B, C, H, W] -> [B, C, H, W]; theta, phi, g project to `inter_channels` channels.
    The default, 1, is what the AGW code that ADCA / PGM / GUR / PCLHD build on actually uses
    (`inter_channels = reduc_ratio // reduc_ratio`), so checkpoints and parameter counts match theirs;
    C // 2 is the width the AGW paper describes.
    """

    def __init__(self, in_channels: int, inter_channels: int = 1) -> None:
        super().__init__()
        if not 1 <= inter_channels <= in_channels:
            raise ValueError(f"non-local inter_channels must lie in 1..{in_channels}, got {inter_channels}")
        self.theta = nn.Conv2d(in_channels, inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, inter_channels, kernel_size=1)
        self.g = nn.Conv2d(in_channels, inter_channels, kernel_size=1)
        self.W = nn.Sequential(nn.Conv2d(inter_channels, in_channels, kernel_size=1), nn.BatchNorm2d(in_channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)            # [B, HW, C']
        phi = self.phi(x).flatten(2)                                # [B, C', HW]
        g = self.g(x).flatten(2).transpose(1, 2)                    # [B, HW, C']
        affinity = torch.matmul(theta, phi) / (height * width)      # [B, HW, HW]
        y = torch.matmul(affinity, g).transpose(1, 2).reshape(batch, -1, height, width)
        return x + self.W(y)


def last_block_indices(num_blocks: int, count: int, layer: str) -> list[int]:
    """Indices of the last `count` of `num_blocks` blocks (AGW's `NL_idx`); ValueError when too few."""
    if count > num_blocks:
        raise ValueError(f"cannot put {count} non-local blocks after the last blocks of {layer}, "
                         f"which has only {num_blocks} blocks")
    return list(range(num_blocks - count, num_blocks))
