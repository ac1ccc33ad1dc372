"""Generalised-mean (GeM) pooling with a fixed exponent, as in AGW."""
from __future__ import annotations

import torch
from torch import nn


class GeM(nn.Module):
    """x [B, C, H, W] -> [B, C]: `(x.clamp(min=eps) ** p).mean((H, W)) ** (1 / p)`, p fixed (not learnt).

    Computed in float32, so bf16 autocast does not lose precision in the cube of large activations.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM exponent p must be positive, got {p}")
        self.p = float(p)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"GeM expects a [B, C, H, W] feature map, got shape {tuple(x.shape)}")
        return x.float().clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}"
