"""Contrastive losses of the unsupervised visible-infrared trainer.

- `cross_view_nce`: an image and its generated (translated) view as the positive pair, GCL-style;
- `check_labels`: pseudo-label validation shared with the memories (`reid.memories`, whose `loss` methods are the
  cluster losses: ClusterNCE and its hard, hybrid and instance variants).

Logits are computed in float32 with autocast off, so bf16 features under autocast give the same loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_LABEL = -1


def check_labels(labels: torch.Tensor, batch_size: int, num_clusters: int, *, name: str = "labels") -> torch.Tensor:
    """labels [B] integer in -1..C-1 (-1 = outlier, ignored); returned as int64. ValueError otherwise."""
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"{name} must be [B] with B = {batch_size}, got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be integer cluster ids, got dtype {labels.dtype}")
    labels = labels.long()
    if labels.numel():
        low, high = torch.stack(torch.aminmax(labels)).tolist()
        if low < IGNORE_LABEL or high >= num_clusters:
            raise ValueError(f"{name} must lie in -1..{num_clusters - 1} (-1 = outlier), got range {low}..{high}")
    return labels


def cross_view_nce(features: torch.Tensor, view_features: torch.Tensor, temperature: float = 0.05,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between images features [B, D] and their generated views view_features [B, D]; scalar.

    GCL-style: image i and its translated view i are the positive pair, the views (images) of the
    other images of the batch are the negatives. Both are L2-normalised here; the loss is
    (CE(f @ v.T / t, arange(B)) + CE(v @ f.T / t, arange(B))) / 2.
    labels [B] (pseudo-labels, -1 = outlier): the views of other images of the same cluster are not
    negatives (they leave the denominators); outliers are each their own cluster.
    """
    _check_temperature(temperature)
    if features.ndim != 2 or features.shape != view_features.shape or features.shape[0] == 0:
        raise ValueError(f"features and view_features must both be [B, D] with B >= 1, got "
                         f"{tuple(features.shape)} and {tuple(view_features.shape)}")
    with _float32(features):
        f = F.normalize(features.float(), dim=1)
        v = F.normalize(view_features.to(features.device, torch.float32), dim=1)
        logits = f @ v.t() / temperature
        targets = torch.arange(f.shape[0], device=f.device)
        if labels is not None:
            labels = check_labels(labels, f.shape[0], int(labels.max()) + 1 if labels.numel() else 0).to(f.device)
            same = (labels[:, None] == labels[None, :]) & (labels[:, None] != IGNORE_LABEL)
            logits = logits.masked_fill(same & (targets[:, None] != targets[None, :]), float("-inf"))
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _float32(features: torch.Tensor) -> torch.autocast:
    """Autocast switched off on the features' device, so the float32 matmul stays float32."""
    return torch.autocast(device_type=features.device.type, enabled=False)
