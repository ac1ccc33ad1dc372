"""DM2C-style mixed-modal features: map every sample into one modality space with its translated
view, so that one clustering gives one label space across modalities, with no association step."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from reid.cluster.clusterers import modality_is_ir

UNIFY_MODES = ("vis", "ir", "both", "mean")


def mixed_modal_features(orig, translated, modality, unify: str = "both", *, center: bool = False) -> torch.Tensor:
    """Features of every sample in a shared modality space; float32, L2-normalised, on orig's device.

    orig: [N, D] features of each image; translated: [N, D] features of its translated view (vis2ir
    for a visible image, ir2vis for an infrared one); modality: "vis"/"ir" strings or bool is_ir [N].
    unify="vis": [N, D], vis images keep orig, ir images take translated; "ir": the reverse;
    "both": [N, 2D], [vis-space, ir-space] halves each L2-normalised; "mean": [N, D], mean of the
    L2-normalised orig and translated.
    center: subtract each modality group's mean (the rows of visible images, and of infrared images)
    before the final normalisation. In the unified space one group is represented by translated
    images and the other by real ones (for unify="ir": vis2ir views against real infrared images);
    centring removes the systematic offset between the two, which otherwise splits clusters by modality.
    """
    if unify not in UNIFY_MODES:
        raise ValueError(f"unify must be one of {UNIFY_MODES}, got {unify!r}")
    orig = _as_features(orig, "orig")
    translated = _as_features(translated, "translated").to(orig.device)
    if translated.shape != orig.shape:
        raise ValueError(f"translated must have the shape of orig {tuple(orig.shape)}, got {tuple(translated.shape)}")
    is_ir = torch.as_tensor(modality_is_ir(modality, orig.shape[0]), device=orig.device)[:, None]
    unified = _unify(orig, translated, is_ir, unify)
    if center:
        group = is_ir[:, 0]
        for rows in (group, ~group):
            if rows.any():
                unified[rows] = unified[rows] - unified[rows].mean(dim=0, keepdim=True)
    return F.normalize(unified, dim=1)


def _unify(orig: torch.Tensor, translated: torch.Tensor, is_ir: torch.Tensor, unify: str) -> torch.Tensor:
    """The unified features before the final normalisation (see `mixed_modal_features`)."""
    if unify == "mean":
        return F.normalize(orig, dim=1) + F.normalize(translated, dim=1)
    vis_space = torch.where(is_ir, translated, orig)
    ir_space = torch.where(is_ir, orig, translated)
    if unify == "vis":
        return F.normalize(vis_space, dim=1)
    if unify == "ir":
        return F.normalize(ir_space, dim=1)
    return torch.cat([F.normalize(vis_space, dim=1), F.normalize(ir_space, dim=1)], dim=1)


def _as_features(features, name: str) -> torch.Tensor:
    features = torch.as_tensor(features)
    if features.ndim != 2:
        raise ValueError(f"{name} must be [N, D] features, got shape {tuple(features.shape)}")
    if not torch.is_floating_point(features):
        raise ValueError(f"{name} must hold floating-point features, got dtype {features.dtype}")
    return features.float()
