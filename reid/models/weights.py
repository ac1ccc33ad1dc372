"""ImageNet weights for the two-stream ResNets, read from local torchvision state dicts (no download):
conv1/bn1 go into both stems, layer1..layer4 into the shared trunk, fc is ignored."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

# File names torchvision has used for its ImageNet ResNet weights (V1 and V2 recipes).
TORCHVISION_FILES = {
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth"),
}
STEM_PREFIXES = ("conv1.", "bn1.")
TRUNK_PREFIXES = ("layer1.", "layer2.", "layer3.", "layer4.")


def hub_checkpoint_dir() -> Path:
    """Where torchvision caches downloaded weights: `torch.hub.get_dir()/checkpoints`."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights(depth: str, pretrained: str | os.PathLike) -> Path:
    """The weights file for `pretrained`: "imagenet" looks for torchvision's files for `depth` in the
    hub cache, anything else is a path. FileNotFoundError naming what was tried when absent."""
    if str(pretrained) != "imagenet":
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {path} does not exist; pass pretrained='imagenet', "
                                    "a path to a torchvision ResNet state dict (.pth), or None for random init")
        return path
    if depth not in TORCHVISION_FILES:
        raise ValueError(f"no ImageNet weights are known for {depth!r}; known: {sorted(TORCHVISION_FILES)}")
    tried = [hub_checkpoint_dir() / name for name in TORCHVISION_FILES[depth]]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"ImageNet weights for {depth} not found; tried {', '.join(str(p) for p in tried)}. The toolkit does not "
        f"download them: copy torchvision's {TORCHVISION_FILES[depth][0]} into {hub_checkpoint_dir()} (or set "
        "TORCH_HOME), or pass pretrained=<path to a torchvision .pth state dict>")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A torchvision state dict from `path` (torch.load with weights_only=True, on the CPU)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def two_stream_keys(state: dict[str, torch.Tensor], modalities: list[str]) -> dict[str, torch.Tensor]:
    """Rename torchvision ResNet keys for TwoStreamNet: conv1/bn1 -> stems.<m>.* for every modality,
    layerN -> trunk.layerN; other keys (fc) are dropped."""
    renamed = {}
    for key, value in state.items():
        if key.startswith(STEM_PREFIXES):
            renamed.update({f"stems.{modality}.{key}": value for modality in modalities})
        elif key.startswith(TRUNK_PREFIXES):
            renamed[f"trunk.{key}"] = value
    return renamed


def load_resnet_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Copy the torchvision ResNet state dict at `path` into a two-stream ResNet's stems and trunk.

    ValueError naming the keys when the file does not fit (another depth, missing layers).
    """
    weights = two_stream_keys(read_state_dict(path), list(model.stems))
    target = model.state_dict()
    unknown = sorted(set(weights) - set(target))
    wrong = [f"{key} {tuple(value.shape)} vs {tuple(target[key].shape)}"
             for key, value in weights.items() if key in target and value.shape != target[key].shape]
    expected = {key for key in target if key.startswith(("stems.", "trunk.layer"))
                and not key.endswith("num_batches_tracked")}
    missing = sorted(expected - set(weights))
    if unknown or wrong or missing:
        problems = [f"{label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                    for label, items in (("unexpected keys", unknown), ("shape mismatches (file vs model)", wrong),
                                         ("missing keys", missing)) if items]
        raise ValueError(f"{path} does not fit this model ({type(model).__name__}, {model.feature_dim}-d): "
                         + "; ".join(problems))
    model.load_state_dict(weights, strict=False)
    logger.info("loaded ResNet weights from %s into the %s stems and the shared trunk", path, "/".join(model.stems))
