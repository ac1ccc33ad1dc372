"""Feature extractors for KID, built without any download.

A feature extractor is a callable `(images [B, 1 or 3, H, W] in [-1, 1], modality=None) -> [B, D]` float32
features on the CPU. `modality` ("vis" or "ir") says what the images are: a ReID model routes infrared
images through its infrared stem; a torchvision backbone ignores it. One-channel images are repeated to
three channels. Extractors run in float32 under `torch.no_grad()` (no bf16 autocast: KID is a small
difference of large kernel sums), on the device given when they were built.

- `torchvision_extractor(arch, weights, device)`: a torchvision classification backbone without its last
  linear layer (for ResNets and Inception the 2048-d global-average-pooled penultimate features, the
  FID/KID convention), ImageNet normalisation, input resized to 224x224 (299x299 for inception_v3).
- `reid_extractor(checkpoint, device)`: the BN-neck features of a ReID checkpoint (`reid.models`), not
  L2-normalised (the KID kernel x . y / D + 1 is meant for features of unit-order per-dimension scale).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Protocol

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from reid.models import TORCHVISION_FILES, hub_checkpoint_dir, load_model_checkpoint
from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD

from .losses import match_channels

logger = logging.getLogger(__name__)

# Networks whose torchvision ImageNet weights include auxiliary classifiers and expect `transform_input`.
AUX_LOGIT_ARCHS = ("inception_v3", "googlenet")
INPUT_SIZES = {"inception_v3": 299}
DEFAULT_INPUT_SIZE = 224
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
MODALITIES = ("vis", "ir")


class FeatureExtractor(Protocol):
    """images [B, 1 or 3, H, W] in [-1, 1] (modality "vis" or "ir", or None) -> features [B, D] float32, CPU."""

    name: str  # e.g. "torchvision:resnet50", "reid:/path/to/model.pt"
    feature_dim: int  # D
    weights: str  # "random" or the file the weights came from

    def __call__(self, images: Tensor, modality: Optional[str] = None) -> Tensor: ...


def imagenet_input(images: Tensor, size: tuple[int, int]) -> Tensor:
    """[B, 1 or 3, H, W] in [-1, 1] -> [B, 3, size] ImageNet-normalised: grey repeated, mapped to [0, 1],
    bilinear (antialiased) resize, then (x - mean) / std."""
    images = match_channels(images.float(), 3)
    images = ((images + 1.0) / 2.0).clamp(0.0, 1.0)
    if tuple(images.shape[-2:]) != tuple(size):
        images = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


class _Extractor:
    """A module applied to prepared inputs; see the module docstring for the calling convention."""

    def __init__(self, name: str, module: nn.Module, prepare, device: torch.device | str, feature_dim: int, *,
                 uses_modality: bool, weights: str) -> None:
        self.name, self.module, self.prepare = name, module.to(device).eval(), prepare
        self.device, self.feature_dim, self.uses_modality = torch.device(device), feature_dim, uses_modality
        self.weights = weights  # where the weights came from: "random" or a file

    def __call__(self, images: Tensor, modality: Optional[str] = None) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be [B, 1 or 3, H, W], got shape {tuple(images.shape)}")
        if modality is not None and modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES} or None, got {modality!r}")
        if self.uses_modality and modality is None:
            raise ValueError(f"{self.name} needs the images' modality ('vis' or 'ir')")
        with torch.no_grad():
            features = self.module(*self.prepare(images.to(self.device), modality))
        return features.float().flatten(1).cpu()

    def __repr__(self) -> str:
        return f"FeatureExtractor({self.name}, {self.feature_dim}-d, {self.device})"


# --------------------------------------------------------------------------- torchvision


def torchvision_archs() -> list[str]:
    """torchvision's classification model names (what `torchvision_extractor` accepts)."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def torchvision_weight_files(arch: str) -> list[str]:
    """torchvision's file names for `arch`'s ImageNet weights, in its enum order (V1, then V2, ...),
    plus older names `reid.models.weights.TORCHVISION_FILES` knows."""
    names = [Path(weights.url).name for weights in torchvision.models.get_model_weights(arch)]
    return names + [name for name in TORCHVISION_FILES.get(arch, ()) if name not in names]


def _build_backbone(arch: str, weights: Optional[str | os.PathLike]) -> tuple[nn.Module, str]:
    """The torchvision classifier (random, from the hub cache, or from a file) and where its weights came from."""
    kwargs = {"aux_logits": True, "transform_input": True, "init_weights": True} if arch in AUX_LOGIT_ARCHS else {}
    if weights is None:
        return torchvision.models.get_model(arch, weights=None, **kwargs), "random"
    if str(weights) == "imagenet":
        tried = [hub_checkpoint_dir() / name for name in torchvision_weight_files(arch)]
        by_name = {Path(w.url).name: w for w in torchvision.models.get_model_weights(arch)}
        for path in tried:
            if path.is_file():
                if path.name in by_name:  # torchvision reads its own cached file (no download: it is there)
                    kwargs.pop("init_weights", None)
                    return torchvision.models.get_model(arch, weights=by_name[path.name], **kwargs), str(path)
                weights = path
                break
        else:
            raise FileNotFoundError(
                f"ImageNet weights for {arch} not found; tried {', '.join(str(p) for p in tried)}. Nothing is "
                f"downloaded: copy torchvision's {tried[0].name if tried else arch + ' weights'} into "
                f"{hub_checkpoint_dir()} (or set TORCH_HOME), pass a path to a torchvision state dict "
                "(CLI: --extractor-weights PATH), or use random weights (CLI: --extractor-weights random)")
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"extractor weights file {path} does not exist; pass 'imagenet' (torch hub cache), "
                                "a path to a torchvision state dict (.pth), or None for random weights")
    model = torchvision.models.get_model(arch, weights=None, **kwargs)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{path} does not fit torchvision's {arch}: {error}") from error
    return model, str(path)


def strip_classifier(model: nn.Module) -> nn.Module:
    """Replace the final linear layer of a torchvision classifier's head (`fc`, `classifier`, `heads` or
    `head`, or the last Linear inside it) by the identity, in place; the model then returns the features
    that layer received."""
    for attribute in HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if isinstance(head, nn.Linear):
            setattr(model, attribute, nn.Identity())
            return model
        if isinstance(head, nn.Sequential):
            linear = [name for name, child in head.named_children() if isinstance(child, nn.Linear)]
            if linear:
                setattr(head, linear[-1], nn.Identity())
                return model
    raise ValueError(f"cannot find the classification layer of {type(model).__name__} (looked for a Linear "
                     f"{' / '.join(HEAD_ATTRIBUTES)})")


def torchvision_extractor(arch: str = "resnet50", weights: Optional[str | os.PathLike] = "imagenet",
                          device: torch.device | str = "cpu", image_size: Optional[int] = None) -> _Extractor:
    """Penultimate features of a torchvision classifier (for resnet50 / inception_v3: 2048-d pooled).

    weights: "imagenet" (torchvision's file for `arch` in `torch.hub.get_dir()/checkpoints`, e.g.
    resnet50-0676ba61.pth or resnet50-11ad3fa6.pth; FileNotFoundError naming every path tried when none is
    there), a path to a state dict, or None for random initialisation (allowed, with a WARNING: KID on random
    features only compares low-level image statistics). Never downloads.
    image_size: the square input side (default 299 for inception_v3, 224 otherwise).
    """
    if arch not in torchvision_archs():
        raise ValueError(f"unknown torchvision classifier {arch!r}; choose one of {', '.join(torchvision_archs())}")
    model, source = _build_backbone(arch, weights)
    if weights is None:
        logger.warning("feature extractor %s has random weights: KID on random features only compares low-level "
                       "image statistics, not what the images show", arch)
    strip_classifier(model)
    side = image_size or INPUT_SIZES.get(arch, DEFAULT_INPUT_SIZE)
    with torch.no_grad():
        feature_dim = model.eval()(torch.zeros(1, 3, side, side)).flatten(1).shape[1]
    logger.info("feature extractor torchvision:%s (%s weights), %dx%d input, %d-d features", arch, source, side,
                side, feature_dim)
    return _Extractor(f"torchvision:{arch}", model, lambda images, modality: (imagenet_input(images, (side, side)),),
                      device, feature_dim, uses_modality=False, weights=source)


# --------------------------------------------------------------------------- ReID


def reid_extractor(checkpoint: str | os.PathLike, device: torch.device | str = "cpu") -> _Extractor:
    """The BN-neck features ("features", not normalised) of a ReID checkpoint's model.

    Images are resized to the model's (height, width), ImageNet-normalised, and passed with
    is_ir = (modality == "ir") for every row: call it with modality "ir" for real or translated (vis2ir)
    infrared images and "vis" for visible ones; the modality is required.
    """
    model, model_config = load_model_checkpoint(checkpoint, "cpu")
    size = (model_config.height, model_config.width)

    def prepare(images: Tensor, modality: str) -> tuple[Tensor, Tensor]:
        is_ir = torch.full((images.shape[0],), modality == "ir", dtype=torch.bool, device=images.device)
        return imagenet_input(images, size), is_ir

    class _Features(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, images: Tensor, is_ir: Tensor) -> Tensor:
            return self.net(images, is_ir)["features"]

    extractor = _Extractor(f"reid:{checkpoint}", _Features(model), prepare, device, int(model.feature_dim),
                           uses_modality=True, weights=str(checkpoint))
    logger.info("feature extractor: ReID checkpoint %s (%s, %dx%d input, %d-d features)", checkpoint,
                model_config.arch, size[0], size[1], extractor.feature_dim)
    return extractor
