"""Import generators trained by the CycleGAN reference (junyanz/pytorch-CycleGAN-and-pix2pix) as a translator
checkpoint that `vi-translate translate`, `evaluate` and `sample` read.

The reference saves each network's state dict in a file of its own (`latest_net_G_A.pth`, `latest_net_G_B.pth`,
`latest_net_D_A.pth`, `latest_net_D_B.pth`). Its `ResnetGenerator` (`--netG resnet_9blocks` / `resnet_6blocks`,
`--norm instance`, `--padding_type reflect`) and `NLayerDiscriminator` (`--netD basic` / `n_layers`) have the module
layout of `vi_translate.networks`, so their keys ("model.1.weight", "model.10.conv_block.1.weight", ...) carry over,
with two exceptions handled here:

- generators trained with dropout (`--no_dropout` off; the reference's CycleGAN default is no dropout) have a
  Dropout at `conv_block.4` of every residual block, which moves the block's second convolution from
  `conv_block.5` to `conv_block.6`; the import renames it and leaves dropout out, so translations are those of
  the reference's test script with `--eval`;
- checkpoints written before PyTorch 0.4 hold `running_mean` / `running_var` / `num_batches_tracked` for the
  instance norms, which the reference drops on load (`BaseModel.__patch_instance_norm_state_dict`); so does this.

The reference's G_A translates its domain A to B, G_B the reverse, and D_A judges domain B, D_B domain A.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from reid.checkpoint import CheckpointError, load_module_state
from reid.config import ConfigError, config_to_dict
from reid.files import file_sha256

from .checkpoint import save_translator_checkpoint
from .config import ImageConfig, NetworkConfig, TranslatorConfig
from .cyclegan import VIS_CHANNELS
from .networks import PatchDiscriminator, ResnetGenerator

logger = logging.getLogger(__name__)

REFERENCE = "junyanz/pytorch-CycleGAN-and-pix2pix"
DIRECTIONS = ("AtoB", "BtoA")  # AtoB: the reference's domain A is visible (G_A is vis2ir); BtoA: A is infrared
NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
DROPOUT_SECOND_CONV = re.compile(r"(\.conv_block\.)6\.")  # the block's second conv behind a Dropout at index 4


def read_reference_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A reference state dict {key: tensor}, read with `torch.load(weights_only=True)` on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged or foreign files
        raise CheckpointError(f"cannot read {path} with torch.load(weights_only=True): the file is truncated, "
                              f"corrupt or holds objects other than tensors ({type(error).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors (a reference latest_net_*.pth file); "
                              f"it holds a {type(state).__name__}")
    return dict(state)


def to_toolkit_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's keys as `vi_translate.networks` names them: instance-norm statistics dropped, the second
    convolution of dropout-trained residual blocks moved from `conv_block.6` to `conv_block.5`."""
    kept = {key: value for key, value in state.items() if key.rsplit(".", 1)[-1] not in NORM_STATISTICS}
    if not any(DROPOUT_SECOND_CONV.search(key) for key in kept):
        return kept
    return {DROPOUT_SECOND_CONV.sub(r"\g<1>5.", key): value for key, value in kept.items()}


def load_reference_into(module: nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, name: str,
                        built: str) -> None:
    """Load a reference state dict read from `path` into `module` (a toolkit network built as `built` says); a
    key or shape that does not fit is a CheckpointError naming the file, the network and the keys."""
    try:
        load_module_state(module, to_toolkit_keys(state), name=name, path=path)
    except CheckpointError as error:
        raise CheckpointError(f"{error} (built as the reference's --norm instance layout with {built}: pass the "
                              "sizes the reference was trained with)") from None


def infrared_channels(g_ir2vis: dict[str, torch.Tensor], path: str | os.PathLike) -> int:
    """Infrared channels (1 or 3): the input channels of the reference's ir2vis generator (read from `path`)."""
    first = g_ir2vis.get("model.1.weight")
    if first is None or first.dim() != 4:
        raise CheckpointError(f"{path}: no 'model.1.weight' [ngf, C, 7, 7] (the first convolution of the "
                              f"reference's ResnetGenerator); is it a {REFERENCE} generator?")
    channels = int(first.shape[1])
    if channels not in (1, 3):
        raise CheckpointError(f"{path}: 'model.1.weight' takes {channels}-channel input; infrared images have 1 or "
                              "3 channels")
    return channels


def import_cyclegan_generators(g_a_path: str | os.PathLike, g_b_path: str | os.PathLike,
                               out_path: str | os.PathLike, *, ngf: int = 64, n_blocks: int = 9,
                               direction: str = "AtoB", height: int = 256, width: int = 256,
                               d_a_path: str | os.PathLike | None = None, d_b_path: str | os.PathLike | None = None,
                               ndf: int = 64, n_layers_d: int = 3, overwrite: bool = False) -> Path:
    """Write a translator checkpoint (kind "cyclegan") from the reference's `latest_net_G_A.pth` / `_G_B.pth`.

    ngf, n_blocks: the reference's --ngf and --netG (resnet_9blocks: 9, resnet_6blocks: 6).
    direction: "AtoB" when the reference's domain A is visible (G_A translates vis -> ir), "BtoA" when A is
        infrared (G_A translates ir -> vis).
    height, width: the size `translate` resizes every image to before the generator, the person scale the
        reference trained at (its --crop_size, 256 x 256 by default); multiples of 4.
    d_a_path, d_b_path: the reference's D_A / D_B (ndf, n_layers_d: its --ndf, --n_layers_D); without them the
        checkpoint gets freshly initialised discriminators, which translate, evaluate and sample never use.
    The checkpoint holds the four networks and where they came from, not the reference's optimiser state:
    `vi-translate train --resume` refuses it. Infrared channels come from G_ir2vis's first convolution.
    Returns `out_path`; an existing file there is an error unless `overwrite`.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if (d_a_path is None) != (d_b_path is None):
        raise ValueError("pass both reference discriminators (d_a_path and d_b_path) or neither")
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; choose another output path, or replace it (--overwrite, "
                              "overwrite=True)")
    vis2ir_path, ir2vis_path = (g_a_path, g_b_path) if direction == "AtoB" else (g_b_path, g_a_path)
    vis2ir, ir2vis = read_reference_state(vis2ir_path), read_reference_state(ir2vis_path)
    ir_channels = infrared_channels(ir2vis, ir2vis_path)
    config = _translator_config(ir_channels, ngf=ngf, n_blocks=n_blocks, ndf=ndf, n_layers_d=n_layers_d,
                                height=height, width=width)
    nets = _generators(vis2ir, vis2ir_path, ir2vis, ir2vis_path, ir_channels, ngf, n_blocks)
    nets |= _discriminators(d_a_path, d_b_path, direction, ir_channels, ndf, n_layers_d)
    origin = _origin(g_a_path, g_b_path, d_a_path, d_b_path, direction)
    save_translator_checkpoint(out_path, config=config_to_dict(config), step=0,
                               state={"nets": {name: net.state_dict() for name, net in nets.items()},
                                      "imported_from": origin})
    logger.info("imported %s generators %s, %s (%s) into %s", REFERENCE, g_a_path, g_b_path, direction, out_path)
    return out_path


def _translator_config(ir_channels: int, *, ngf: int, n_blocks: int, ndf: int, n_layers_d: int, height: int,
                       width: int) -> TranslatorConfig:
    """The config saved with the import: network sizes, and the translation size as load = crop size."""
    try:
        image = ImageConfig(load_height=height, load_width=width, crop_height=height, crop_width=width, flip=False,
                            ir_channels=ir_channels)
    except ConfigError as error:
        raise ValueError(f"import_cyclegan_generators: height={height}, width={width}: {error}") from None
    return TranslatorConfig(image=image, model=NetworkConfig(ngf=ngf, ndf=ndf, n_blocks=n_blocks,
                                                             n_layers_d=n_layers_d))


def _generators(vis2ir: dict, vis2ir_path, ir2vis: dict, ir2vis_path, ir_channels: int, ngf: int,
                n_blocks: int) -> dict[str, nn.Module]:
    """g_vis2ir / g_ir2vis holding the reference generators' weights."""
    built = f"ngf={ngf}, n_blocks={n_blocks}, reflection padding, {ir_channels}-channel infrared"
    nets = {"g_vis2ir": ResnetGenerator(VIS_CHANNELS, ir_channels, ngf=ngf, n_blocks=n_blocks),
            "g_ir2vis": ResnetGenerator(ir_channels, VIS_CHANNELS, ngf=ngf, n_blocks=n_blocks)}
    load_reference_into(nets["g_vis2ir"], vis2ir, vis2ir_path, "G_vis2ir", built)
    load_reference_into(nets["g_ir2vis"], ir2vis, ir2vis_path, "G_ir2vis", built)
    return nets


def _discriminators(d_a_path, d_b_path, direction: str, ir_channels: int, ndf: int,
                    n_layers_d: int) -> dict[str, nn.Module]:
    """d_vis / d_ir: the reference's D_A / D_B when given (D_A judges domain B), else freshly initialised
    (seed 0, without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        nets = {"d_vis": PatchDiscriminator(VIS_CHANNELS, ndf=ndf, n_layers=n_layers_d),
                "d_ir": PatchDiscriminator(ir_channels, ndf=ndf, n_layers=n_layers_d)}
    if d_a_path is not None:
        built = f"ndf={ndf}, n_layers_d={n_layers_d}, {ir_channels}-channel infrared"
        judges_b, judges_a = ("d_ir", "d_vis") if direction == "AtoB" else ("d_vis", "d_ir")
        load_reference_into(nets[judges_b], read_reference_state(d_a_path), d_a_path, "D_A", built)
        load_reference_into(nets[judges_a], read_reference_state(d_b_path), d_b_path, "D_B", built)
    return nets


def _origin(g_a_path, g_b_path, d_a_path, d_b_path, direction: str) -> dict:
    """Where the imported weights came from (files and their sha256), saved in the checkpoint's state."""
    files = {"G_A": g_a_path, "G_B": g_b_path, "D_A": d_a_path, "D_B": d_b_path}
    return {"source": REFERENCE, "direction": direction,
            "discriminators": "imported" if d_a_path is not None else "initialised (not imported)",
            "files": {name: {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}
                      for name, path in files.items() if path is not None}}


# ---------------------------------------------------------------------------------------------- the command


def add_parser(subparsers) -> None:
    """`vi-translate import-reference G_A G_B --out CKPT [options]` (vi_translate.cli adds it)."""
    import argparse

    parser = subparsers.add_parser(
        "import-reference", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="make a translator checkpoint from the CycleGAN reference's latest_net_G_A.pth / latest_net_G_B.pth",
        description=f"Import generators trained by {REFERENCE} (--model cycle_gan with --norm instance and reflection "
                    "padding, its defaults) as a translator checkpoint that translate, evaluate and sample read. "
                    "Keys and shapes are checked against --ngf and --n-blocks; a mismatch names the file and the key. "
                    "The checkpoint holds no optimiser state: train --resume refuses it.")
    parser.add_argument("g_a", metavar="G_A",
                        help="the reference's latest_net_G_A.pth (translates its domain A to B)")
    parser.add_argument("g_b", metavar="G_B", help="the reference's latest_net_G_B.pth (translates B to A)")
    parser.add_argument("--out", required=True, help="the translator checkpoint to write")
    parser.add_argument("--direction", choices=DIRECTIONS, default="AtoB",
                        help="AtoB: the reference's domain A is visible (G_A translates vis -> ir); "
                             "BtoA: A is infrared")
    parser.add_argument("--ngf", type=int, default=64, help="the reference's --ngf")
    parser.add_argument("--n-blocks", type=int, default=9,
                        help="residual blocks: 9 for the reference's --netG resnet_9blocks, 6 for resnet_6blocks")
    parser.add_argument("--height", type=int, default=256,
                        help="height images are resized to before the generator (the size it was trained at)")
    parser.add_argument("--width", type=int, default=256,
                        help="width images are resized to before the generator (the size it was trained at)")
    parser.add_argument("--d-a", help="the reference's latest_net_D_A.pth (with --d-b; default: fresh discriminators)")
    parser.add_argument("--d-b", help="the reference's latest_net_D_B.pth (with --d-a)")
    parser.add_argument("--ndf", type=int, default=64, help="the reference's --ndf (with --d-a / --d-b)")
    parser.add_argument("--n-layers-d", type=int, default=3,
                        help="the reference's --n_layers_D, 3 for --netD basic (with --d-a / --d-b)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(handler=run)


def run(args) -> tuple[int, str]:
    """The command: import, then (exit status 0, a line naming the checkpoint)."""
    path = import_cyclegan_generators(args.g_a, args.g_b, args.out, ngf=args.ngf, n_blocks=args.n_blocks,
                                      direction=args.direction, height=args.height, width=args.width,
                                      d_a_path=args.d_a, d_b_path=args.d_b, ndf=args.ndf, n_layers_d=args.n_layers_d,
                                      overwrite=args.overwrite)
    return 0, f"translator checkpoint: {path} (use it with vi-translate translate / evaluate / sample --checkpoint)"
