"""The two-stream network: a stem per modality, a shared trunk, GeM pooling and a BN neck."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..data.record import MODALITIES
from .pooling import GeM


def bn_neck(dim: int) -> nn.BatchNorm1d:
    """BatchNorm1d(dim), weight 1 and bias 0, bias frozen (the BNNeck of BoT / AGW)."""
    neck = nn.BatchNorm1d(dim)
    nn.init.ones_(neck.weight)
    nn.init.zeros_(neck.bias)
    neck.bias.requires_grad_(False)
    return neck


class TwoStreamNet(nn.Module):
    """Modality-specific stems ("vis", "ir", copies of `stem`), a shared `trunk`, GeM and a BN neck.

    forward(images [B, 3, H, W], is_ir [B] bool) -> {"pooled": [B, D] GeM output (for training losses),
    "features": [B, D] BN-neck output (for evaluation; not normalised)}, D = `feature_dim`.
    A batch may mix modalities: each stem runs on its own images and the rows keep their order.
    """

    def __init__(self, stem: nn.Module, trunk: nn.Module, feature_dim: int, gem_p: float = 3.0) -> None:
        super().__init__()
        self.stems = nn.ModuleDict({modality: copy.deepcopy(stem) for modality in MODALITIES})
        self.trunk = trunk
        self.pool = GeM(gem_p)
        self.neck = bn_neck(feature_dim)
        self.feature_dim = feature_dim

    def feature_map(self, images: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W], is_ir [B] bool -> trunk output [B, D, h, w]."""
        is_ir = _check_inputs(images, is_ir)
        return self.trunk(self._run_stems(images, is_ir))

    def forward(self, images: torch.Tensor, is_ir: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.pool(self.feature_map(images, is_ir))
        return {"pooled": pooled, "features": self.neck(pooled)}

    def _run_stems(self, images: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> stem output [B, C, h, w], row i through the ir stem where is_ir[i]."""
        if not bool(is_ir.any()):
            return self.stems["vis"](images)
        if bool(is_ir.all()):
            return self.stems["ir"](images)
        vis_rows = (~is_ir).nonzero().squeeze(1)
        ir_rows = is_ir.nonzero().squeeze(1)
        stacked = torch.cat([self.stems["vis"](images[vis_rows]), self.stems["ir"](images[ir_rows])])
        return stacked[torch.cat([vis_rows, ir_rows]).argsort()]


def _check_inputs(images: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
    """Validate shapes; return is_ir as a bool tensor on the images' device."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    is_ir = torch.as_tensor(is_ir, device=images.device)
    if is_ir.dtype != torch.bool:
        raise TypeError(f"is_ir must be a bool tensor (True for infrared images), got dtype {is_ir.dtype}")
    if is_ir.shape != images.shape[:1]:
        raise ValueError(f"is_ir must be [B] = [{images.shape[0]}] (one flag per image), "
                         f"got shape {tuple(is_ir.shape)}")
    return is_ir
