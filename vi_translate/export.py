"""`vi-translate export`: a translator's generators as ONNX or TorchScript graphs.

Each generator becomes OUT/vis2ir.onnx and OUT/ir2vis.onnx (.pt for TorchScript): input "images"
[B, C_in, crop_height, crop_width] float32 in [-1, 1], output "translated" [B, C_out, crop_height, crop_width] in
[-1, 1] (tanh), the batch size free. C is 3 for visible images and the checkpoint's image.ir_channels (1 or 3)
for infrared ones. Feed images as `vi-translate sample` does: resized (bicubic) straight to the crop size, pixel
/ 127.5 - 1; turn the output back into pixels with (y + 1) * 127.5, clamped to 0..255 and rounded. Each graph
gets a JSON sidecar (graph path + ".json") with those sizes, channels, the value range, the direction, the
checkpoint's sha256 and the largest difference from PyTorch measured after export. The exporters and the atomic
writes are `reid.export`'s.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from torch import nn

from reid.cli_support import positive_int, write_json
from reid.files import check_output_folder
from reid.export import (CHECK_BATCH, FORMATS, MIN_OPSET, ONNX_INSTALL, SUFFIXES, TRACE_BATCH, check_format,
                         cpu_eval_copy, describe_check, example_images, export_graph, file_sha256, prepare_output,
                         sidecar_path)

from .checkpoint import load_translator
from .config import TranslatorConfig
from .cyclegan import VIS_CHANNELS, CycleGANNets

logger = logging.getLogger(__name__)

DIRECTIONS = ("vis2ir", "ir2vis", "both")
INPUT_NAME = "images"
OUTPUT_NAME = "translated"
VALUE_RANGE = (-1.0, 1.0)


class GeneratorGraph(nn.Module):
    """images [B, C_in, H, W] -> translated [B, C_out, H, W]: a ResnetGenerator's layers without its Python
    shape check (the graph's input shape is fixed at export instead)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.model = generator.model

    def forward(self, images):
        return self.model(images)


def generator_paths(out_dir: str | os.PathLike, fmt: str, direction: str) -> dict[str, Path]:
    """{direction: OUT/<direction><suffix>} for the generators `direction` selects."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    check_format(fmt)
    out = check_output_folder(out_dir, what="--out")
    chosen = ("vis2ir", "ir2vis") if direction == "both" else (direction,)
    return {name: out / f"{name}{SUFFIXES[fmt]}" for name in chosen}


def export_generators(nets: CycleGANNets, config: TranslatorConfig, out_dir: str | os.PathLike, *,
                      fmt: str = "onnx", direction: str = "both", opset: int | None = None,
                      checkpoint: str | os.PathLike | None = None, checkpoint_sha256: str | None = None,
                      overwrite: bool = False) -> list[Path]:
    """Export the generators of a translator (`load_translator`) into `out_dir`; returns the graph files written
    (each with its sidecar, `reid.export.sidecar_path(graph)`).

    config: the translator's config (crop size, ir_channels). fmt: "onnx", "pt2" or "torchscript". direction:
    "vis2ir", "ir2vis" or "both". opset: ONNX opset (>= 18; default the exporter's). checkpoint,
    checkpoint_sha256: recorded in the sidecars (the hash is computed when only the path is given). overwrite:
    replace existing files that are not earlier exports (`reid.export.prepare_output`). The generators are copied to the CPU in eval mode; the caller's are left as they are.
    """
    paths = generator_paths(out_dir, fmt, direction)
    check_format(fmt, opset)
    for path in paths.values():
        prepare_output(path, overwrite=overwrite)
    if checkpoint is not None and checkpoint_sha256 is None:
        checkpoint_sha256 = file_sha256(checkpoint)
    height, width = config.image.crop_height, config.image.crop_width
    ir_channels = config.image.ir_channels
    written = []
    for name, path in paths.items():
        generator = nets.g_vis2ir if name == "vis2ir" else nets.g_ir2vis
        in_channels, out_channels = (VIS_CHANNELS, ir_channels) if name == "vis2ir" else (ir_channels, VIS_CHANNELS)
        module = GeneratorGraph(cpu_eval_copy(generator)).eval()
        exported = export_graph(module, (example_images(TRACE_BATCH, in_channels, height, width, seed=0),),
                                (example_images(CHECK_BATCH, in_channels, height, width, seed=1),), path, fmt,
                                input_names=[INPUT_NAME], output_name=OUTPUT_NAME, opset=opset)
        sidecar = generator_sidecar(config, path, name, in_channels, out_channels, checkpoint=checkpoint,
                                    checkpoint_sha256=checkpoint_sha256)
        write_json(sidecar_path(path), sidecar | exported)
        logger.info("wrote %s (%s, %s)", path, fmt,
                    describe_check(exported["check"]))
        written.append(path)
    return written


def generator_sidecar(config: TranslatorConfig, path: Path, direction: str, in_channels: int, out_channels: int,
                      *, checkpoint: str | os.PathLike | None, checkpoint_sha256: str | None) -> dict:
    """What a user needs to feed a generator graph and read its output."""
    height, width = config.image.crop_height, config.image.crop_width
    source, target = direction.split("2")
    return {
        "kind": "translator", "file": path.name, "direction": direction, "source": source, "target": target,
        "inputs": [{"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", in_channels, height, width]}],
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", out_channels, height, width]},
        "input_size": {"height": height, "width": width},
        "channels": {"input": in_channels, "output": out_channels}, "ir_channels": config.image.ir_channels,
        "value_range": list(VALUE_RANGE),
        "preprocessing": {"color": _colour(source, in_channels),
                          "resize": f"bicubic to {height}x{width} (height x width), the training crop size",
                          "formula": "pixel / 127.5 - 1, NCHW float32"},
        "postprocessing": {"color": _colour(target, out_channels),
                           "formula": "round(clamp((y + 1) * 127.5, 0, 255)) as uint8"},
        "checkpoint": None if checkpoint is None else str(checkpoint), "checkpoint_sha256": checkpoint_sha256,
    }


def _colour(modality: str, channels: int) -> str:
    if channels == 1:
        return "grey (L), one channel"
    return "RGB" if modality == "vis" else "RGB (infrared as 3 channels, as stored)"


def export_translator_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                                 **options) -> list[Path]:
    """`export_generators` for the generators of a translator checkpoint (errors name the file)."""
    check_format(options.get("fmt", "onnx"), options.get("opset"))
    generator_paths(out_dir, options.get("fmt", "onnx"), options.get("direction", "both"))
    nets, config = load_translator(checkpoint, "cpu")
    return export_generators(nets, config, out_dir, checkpoint=checkpoint, **options)


# ------------------------------------------------------------------------------ the command


def add_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="write a translator's generators as ONNX, torch.export or TorchScript models",
        description="Write each generator of a translator checkpoint as an ONNX graph (torch.onnx dynamo exporter), "
                    "a torch.export program (.pt2) or a TorchScript module (torch.jit.trace), the batch size free: "
                    "OUT/vis2ir.onnx and OUT/ir2vis.onnx (.pt2, or .pt for TorchScript). Input \"images\" [B, C, H, W] float32 in [-1, 1] at the "
                    "training crop size (resized bicubic, pixel / 127.5 - 1, as `vi-translate sample` does); "
                    "output \"translated\" [B, C, H, W] in [-1, 1]; C is 3 for visible images and the checkpoint's "
                    "image.ir_channels for infrared ones. Each graph gets a JSON sidecar, OUT/<file>.json, with the "
                    "input size, channels, value range, direction, the checkpoint's sha256 and the largest "
                    "difference from PyTorch measured after export. Files are written atomically. ONNX needs onnx "
                    f"and onnxscript ({ONNX_INSTALL}); onnxruntime runs the check.")
    export.add_argument("--checkpoint", required=True,
                        help="translator checkpoint (vi-translate train or import-reference) to export")
    export.add_argument("--format", dest="fmt", choices=FORMATS, default="onnx",
                        help="onnx: .onnx graphs for onnxruntime and other runtimes; pt2: torch.export programs "
                             "(.pt2) for torch.export.load(path).module(), the format torch recommends; torchscript: "
                             ".pt modules for torch.jit.load (deprecated by torch, kept for libtorch)")
    export.add_argument("--out", required=True, help="output folder (created if missing)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace existing files of the same names even when they are not earlier exports "
                             "(an earlier export, with its .json sidecar, is always replaced)")
    export.add_argument("--direction", choices=DIRECTIONS, default="both",
                        help="which generator to export: vis2ir (visible -> infrared), ir2vis, or both")
    export.add_argument("--opset", type=positive_int,
                        help=f"ONNX opset to write (>= {MIN_OPSET}); default: the exporter's own")
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> tuple[int, str]:
    written = export_translator_checkpoint(args.checkpoint, args.out, fmt=args.fmt, direction=args.direction,
                                           opset=args.opset, overwrite=args.overwrite)
    return 0, "\n".join(f"written: {path} (sidecar {sidecar_path(path)})" for path in written)
