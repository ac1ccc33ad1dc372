"""Pretrained starts for the two-stream networks, read from local files (no download):

- a torchvision ImageNet ResNet state dict (`pretrained="imagenet"`, looked up in the torch hub cache, or a path):
  conv1/bn1 go into both stems, layer1..layer4 into the shared trunk, fc is ignored;
- a backbone file of `vireid pretrain` (any architecture; `pretrained=<path>`, or `"synthetic-visible"`: the start
  the toolkit ships for the embedded benchmark's network): its stem goes into both stems, its trunk into the trunk.

Neither carries a BN neck: the neck starts fresh, as it does over ImageNet weights.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from reid.checkpoint import FORMAT as CHECKPOINT_FORMAT
from reid.checkpoint import CheckpointError, load_checkpoint, load_module_state, read_weights_only, save_checkpoint

logger = logging.getLogger(__name__)

# File names torchvision has used for its ImageNet ResNet weights (V1 and V2 recipes).
TORCHVISION_FILES = {
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth"),
}
# the torchvision ResNet behind each architecture that ImageNet weights fit
IMAGENET_DEPTHS = {"agw_resnet50": "resnet50", "resnet50": "resnet50", "resnet18": "resnet18"}
STEM_PREFIXES = ("conv1.", "bn1.")
TRUNK_PREFIXES = ("layer1.", "layer2.", "layer3.", "layer4.")
BACKBONE_KIND = "backbone"  # the checkpoint kind of `vireid pretrain`'s weights file
STARTS_DIR = Path(__file__).parent / "starts"  # the backbone files the toolkit ships: <arch>-<name>.pt
SHIPPED_STARTS = {"synthetic-visible": "identity classification on visible images of a synthetic population "
                                       "disjoint from the embedded benchmark's (experiments/configs/pretrain/"
                                       "synthetic_visible.yaml)"}


def hub_checkpoint_dir() -> Path:
    """Where torchvision caches downloaded weights: `torch.hub.get_dir()/checkpoints`."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def shipped_start(arch: str, name: str) -> Path:
    """The path of the shipped backbone file `name` (a key of SHIPPED_STARTS) for `arch`."""
    return STARTS_DIR / f"{arch}-{name}.pt"


def resolve_weights(arch: str, pretrained: str | os.PathLike) -> Path:
    """The weights file for `pretrained`: "imagenet" looks for torchvision's files for `arch` in the hub cache, a
    name of SHIPPED_STARTS the file the toolkit ships for `arch`, anything else is a path. FileNotFoundError naming
    what was tried when absent (`arch` may also be a torchvision depth, "resnet18" / "resnet50")."""
    if str(pretrained) in SHIPPED_STARTS:
        path = shipped_start(arch, str(pretrained))
        if not path.is_file():
            shipped = sorted(p.name for p in STARTS_DIR.glob("*.pt"))
            raise FileNotFoundError(f"no {pretrained!r} start is shipped for {arch!r} (looked for {path}; shipped: "
                                    f"{shipped}); make one with `vireid pretrain` and pass its path")
        return path
    if str(pretrained) != "imagenet":
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {path} does not exist; pass pretrained='imagenet', "
                                    f"{', '.join(repr(name) for name in SHIPPED_STARTS)}, a path to a torchvision "
                                    "ResNet state dict (.pth) or to a `vireid pretrain` backbone file, or None for "
                                    "random init")
        return path
    depth = IMAGENET_DEPTHS.get(arch, arch)
    if depth not in TORCHVISION_FILES:
        raise ValueError(f"no ImageNet weights are known for {arch!r}; known: {sorted(IMAGENET_DEPTHS)} (the plain "
                         f"networks take a `vireid pretrain` backbone file, e.g. pretrained='synthetic-visible' for "
                         f"small)")
    tried = [hub_checkpoint_dir() / name for name in TORCHVISION_FILES[depth]]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"ImageNet weights for {depth} not found; tried {', '.join(str(p) for p in tried)}. The toolkit does not "
        f"download them: copy torchvision's {TORCHVISION_FILES[depth][0]} into {hub_checkpoint_dir()} (or set "
        "TORCH_HOME), or pass pretrained=<path to a torchvision .pth state dict>")


def load_pretrained(model: nn.Module, arch: str, pretrained: str | os.PathLike) -> Path:
    """Load the start `pretrained` names (see `resolve_weights`) into a two-stream `model` of `arch`: a `vireid
    pretrain` backbone file into any architecture, a torchvision ResNet state dict into the ResNets. Returns the file.
    Errors name the file and the keys that do not fit."""
    path = resolve_weights(arch, pretrained)
    payload = _read_weights(path)
    if payload.get("format") == CHECKPOINT_FORMAT:
        load_backbone(model, arch, path)
    elif arch in IMAGENET_DEPTHS or arch in TORCHVISION_FILES:
        load_resnet_weights(model, path, payload)
    else:
        raise ValueError(f"{path} is a plain state dict (a torchvision ResNet's?); the {arch} network takes a "
                         "`vireid pretrain` backbone file")
    return path


def _read_weights(path: Path) -> dict:
    """torch.load(weights_only=True) of a weights file, on the CPU; errors name the file."""
    payload = read_weights_only(path)
    if not isinstance(payload, dict):
        raise ValueError(f"{path} does not hold a state dict or a `vireid pretrain` backbone file")
    return payload


# --------------------------------------------------------------------------- `vireid pretrain` backbone files


def backbone_state(model: nn.Module, modality: str = "vis") -> dict[str, dict[str, torch.Tensor]]:
    """{"stem": the `modality` stem's state dict, "trunk": the shared trunk's} of a two-stream model, on the CPU."""
    return {"stem": {k: v.detach().cpu().clone() for k, v in model.stems[modality].state_dict().items()},
            "trunk": {k: v.detach().cpu().clone() for k, v in model.trunk.state_dict().items()}}


def save_backbone(path: str | os.PathLike, model: nn.Module, arch: str, *, config: Mapping | None = None,
                  report: Mapping[str, Any] | None = None, step: int = 0) -> Path:
    """Write a backbone file atomically: a checkpoint of kind "backbone" whose state holds the architecture, the
    `backbone_state` of the visible stem and the trunk, and `report` (numbers and strings: what it was trained on);
    `config`: the pretraining config as a dict."""
    state = {"arch": arch, "feature_dim": int(model.feature_dim), **backbone_state(model), "report": dict(report or {})}
    return save_checkpoint(path, kind=BACKBONE_KIND, state=state, config=config, step=step)


def read_backbone(path: str | os.PathLike) -> dict:
    """The checkpoint dict of a backbone file (CheckpointError naming the file for anything else)."""
    return load_checkpoint(path, kind=BACKBONE_KIND)


def load_backbone(model: nn.Module, arch: str, path: str | os.PathLike) -> None:
    """Put a backbone file's stem into every stem of `model` and its trunk into the trunk (strictly); the BN neck is
    left as it is. CheckpointError naming the file for another architecture or keys that do not fit."""
    state = read_backbone(path)["state"]
    if state.get("arch") != arch:
        raise CheckpointError(f"{path} holds a {state.get('arch')!r} backbone; the model is {arch!r}")
    for modality, stem in model.stems.items():
        load_module_state(stem, state["stem"], name=f"backbone stem (into the {modality} stem)", path=path)
    load_module_state(model.trunk, state["trunk"], name="backbone trunk", path=path)
    logger.info("loaded the backbone %s into the %s stems and the shared trunk", path, "/".join(model.stems))


# --------------------------------------------------------------------------- torchvision ImageNet weights


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


def load_resnet_weights(model: nn.Module, path: str | os.PathLike, state: dict | None = None) -> None:
    """Copy the torchvision ResNet state dict at `path` (already read: `state`) into a two-stream ResNet's stems
    and trunk.

    ValueError naming the keys when the file does not fit (another depth, missing layers).
    """
    if state is None or not all(isinstance(v, torch.Tensor) for v in state.values()):
        state = read_state_dict(path)
    weights = two_stream_keys(state, list(model.stems))
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
