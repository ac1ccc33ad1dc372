"""ReID model checkpoints: the model's config and weights saved together, so `vireid evaluate`
rebuilds the network without being told its architecture."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from reid.checkpoint import load_checkpoint, load_module_state, require_state, save_checkpoint
from reid.config import ModelConfig, config_from_dict

from .registry import build_model

REID_KIND = "reid"


def build_model_from_config(config: ModelConfig) -> nn.Module:
    """`build_model` with the arguments of a ModelConfig."""
    return build_model(config.arch, non_local=config.non_local, pretrained=config.pretrained, gem_p=config.gem_p)


def save_model_checkpoint(path: str | os.PathLike, model: nn.Module, model_config: ModelConfig, *,
                          config: dict | None = None, extra_state: dict | None = None, step: int = 0) -> Path:
    """Save `model`'s weights with its config (and any training state) as a "reid" checkpoint.

    config: the whole run config as a plain dict; its "model" section is set from `model_config`.
    """
    full_config = dict(config or {}) | {"model": dataclasses.asdict(model_config)}
    state = {"model": model.state_dict()} | dict(extra_state or {})
    return save_checkpoint(path, kind=REID_KIND, state=state, config=full_config, step=step)


def load_model_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model of a "reid" checkpoint, load its weights (strictly) and put it in eval mode.

    Errors name the file and the config key or state keys that do not fit.
    """
    checkpoint = load_checkpoint(path, kind=REID_KIND)
    model_config = config_from_dict(ModelConfig, checkpoint["config"].get("model", {}),
                                    source=f"{path} (model config)")
    model = build_model_from_config(dataclasses.replace(model_config, pretrained=None))
    load_module_state(model, require_state(checkpoint, "model", path), name="model weights", path=path)
    return model.to(device).eval(), model_config
