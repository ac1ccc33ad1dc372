"""Contrastive losses of the unsupervised visible-infrared trainer.

- `cluster_nce`: cluster-contrast's ClusterNCE, features against cluster prototypes (pseudo labels).
- `cross_view_nce`: an image and its generated (translated) view as the positive pair, GCL-style.
- `progressive_prototype_loss`: PCLHD's schedule over centroid, hard and dynamic prototype losses.

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


def cluster_nce(features: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor,
                temperature: float) -> torch.Tensor:
    """Cross-entropy of features [B, D] @ prototypes [C, D].T / temperature against labels [B]; scalar.

    Rows labelled -1 are ignored (mean over the others); with no valid row the loss is a zero that
    still carries the graph of `features`. Features are used as given (normally L2-normalised).
    """
    _check_temperature(temperature)
    if features.ndim != 2 or prototypes.ndim != 2 or features.shape[1] != prototypes.shape[1]:
        raise ValueError(f"features [B, D] and prototypes [C, D] must share D, got "
                         f"{tuple(features.shape)} and {tuple(prototypes.shape)}")
    labels = check_labels(labels, features.shape[0], prototypes.shape[0]).to(features.device)
    valid = labels != IGNORE_LABEL
    with _float32(features):
        if not bool(valid.any()):
            return features.float().sum() * 0.0
        logits = features[valid].float() @ prototypes.to(features.device, torch.float32).t() / temperature
        return F.cross_entropy(logits, labels[valid])


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


def progressive_prototype_loss(centroid_loss: torch.Tensor, hard_loss: torch.Tensor | None,
                               dynamic_loss: torch.Tensor | None, epoch: int, start_epoch: int,
                               weight: float) -> torch.Tensor:
    """PCLHD's progressive schedule; scalar.

    centroid_loss alone while epoch < start_epoch (hard/dynamic may then be None and are ignored),
    from start_epoch on centroid_loss + weight * (hard_loss + dynamic_loss).
    """
    if start_epoch < 0 or epoch < 0:
        raise ValueError(f"epoch and start_epoch must be >= 0, got epoch={epoch}, start_epoch={start_epoch}")
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    if epoch < start_epoch:
        return centroid_loss
    missing = [name for name, loss in (("hard_loss", hard_loss), ("dynamic_loss", dynamic_loss)) if loss is None]
    if missing:
        raise ValueError(f"{' and '.join(missing)} needed from start_epoch={start_epoch} on (epoch {epoch})")
    return centroid_loss + weight * (hard_loss + dynamic_loss)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _float32(features: torch.Tensor) -> torch.autocast:
    """Autocast switched off on the features' device, so the float32 matmul stays float32."""
    return torch.autocast(device_type=features.device.type, enabled=False)
