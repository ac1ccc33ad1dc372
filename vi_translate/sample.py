"""`vi-translate sample`: translate a few images for a quick look."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from reid.data import read_image, write_image_atomic
from reid.data.sysu import IMAGE_SUFFIXES

from .checkpoint import load_translator
from .data import image_mode, resize_for_model, to_image, to_model_range
from .visualize import save_translation_grid

DIRECTIONS = ("vis2ir", "ir2vis")


def list_inputs(source: str | os.PathLike, limit: int | None) -> list[Path]:
    """An image file, or the first `limit` images (sorted, recursively; all when None) of a folder."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"--input: {source} is neither an image file nor a folder")
    images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise FileNotFoundError(f"--input: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {source}")
    return images[:limit]


def sample_translations(checkpoint: str | os.PathLike, source: str | os.PathLike, direction: str,
                        out: str | os.PathLike, *, device: torch.device, limit: int = 16) -> list[Path]:
    """Translate images with one generator of a translator checkpoint.

    Each image is translated at the trained resolution and resized back to its own size, written as
    `<name>_<direction>.png` under `out`, and a grid `grid_<direction>.png` (input | translation) is added.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    nets, config = load_translator(checkpoint, device)
    generator = nets.g_vis2ir if direction == "vis2ir" else nets.g_ir2vis
    source_modality = direction.split("2")[0]
    out = Path(out)
    written, inputs, outputs = [], [], []
    for path in list_inputs(source, limit):
        image = read_image(path, image_mode(source_modality, config.image.ir_channels))
        batch = to_model_range(resize_for_model(image, config.image))[None].to(device)
        with torch.no_grad():
            translated = generator(batch)[0].float().cpu()
        result = to_image(translated).resize(image.size)
        target = out / f"{path.stem}_{direction}.png"
        write_image_atomic(result, target)
        written.append(target)
        inputs.append(batch[0].cpu())
        outputs.append(translated)
    written.append(save_translation_grid(out / f"grid_{direction}.png", [torch.stack(inputs), torch.stack(outputs)]))
    return written
