"""Translator checkpoints: the whole training state, and loading the generators for inference."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from reid.checkpoint import load_checkpoint, load_module_state, require_state, save_checkpoint
from reid.config import config_from_dict

from .config import TranslatorConfig
from .cyclegan import CycleGANNets, build_nets

CHECKPOINT_KIND = "cyclegan"


def save_translator_checkpoint(path: str | os.PathLike, *, config: dict, step: int, state: dict) -> Path:
    """Write the training state (nets, optimizers, schedulers, pools, RNG, position) atomically."""
    return save_checkpoint(path, kind=CHECKPOINT_KIND, state=state, config=config, step=step)


def read_translator_checkpoint(path: str | os.PathLike) -> tuple[dict, TranslatorConfig]:
    """The checkpoint dict and its config, checked against the schema (errors name the file and key)."""
    checkpoint = load_checkpoint(path, kind=CHECKPOINT_KIND)
    config = config_from_dict(TranslatorConfig, checkpoint["config"], source=f"{path} (saved config)")
    return checkpoint, config


def load_nets_state(nets: CycleGANNets, checkpoint: dict, path: str | os.PathLike) -> None:
    """Load every network of `nets.modules()` strictly (the PatchNCE heads too when `nets` has them; a checkpoint's
    other entries, such as the heads of a PatchNCE run when `nets` has none, are not read); a mismatch names the file,
    the network and the keys."""
    saved = require_state(checkpoint, "nets", path)
    for name, module in nets.modules().items():
        if name not in saved:
            raise KeyError(f"{path}: checkpoint has no weights for {name}")
        load_module_state(module, saved[name], name=name, path=path)


def load_translator(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[CycleGANNets, TranslatorConfig]:
    """The four networks of a translator checkpoint, in eval mode on `device`, and the run's config (a PatchNCE run's
    projection heads are training-only: they are not built)."""
    checkpoint, config = read_translator_checkpoint(path)
    nets = build_nets(config.model, config.image.ir_channels)
    load_nets_state(nets, checkpoint, path)
    for module in nets.modules().values():
        module.to(device).eval()
    return nets, config
