"""`vi-translate sample`: translate a few images for a quick look."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image

from reid.data import write_image_atomic
from reid.data.sysu import IMAGE_SUFFIXES

from .data import to_image
from .translator import DIRECTIONS, Translator
from .visualize import save_translation_grid



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


def output_names(inputs: list[Path], source: str | os.PathLike, direction: str) -> list[str]:
    """The file name under OUT of each input's translation: its path relative to the `source` folder (just its name
    for a single file), folders joined by "_", suffix dropped, then `_<direction>.png` (`cam1/0001/0002.jpg` ->
    `cam1_0001_0002_vis2ir.png`). A name already taken (by another input, or the grid) gets -2, -3, ... before the
    direction, so no two inputs write one file."""
    source = Path(source)
    taken, names = {grid_name(direction)}, []
    for path in inputs:
        parts = path.relative_to(source).with_suffix("").parts if source.is_dir() else (path.stem,)
        stem, count = "_".join(parts), 1
        name = f"{stem}_{direction}.png"
        while name in taken:
            count += 1
            name = f"{stem}-{count}_{direction}.png"
        taken.add(name)
        names.append(name)
    return names


def grid_name(direction: str) -> str:
    return f"grid_{direction}.png"


def sample_translations(checkpoint: str | os.PathLike, source: str | os.PathLike, direction: str,
                        out: str | os.PathLike, *, device: torch.device, limit: int = 16) -> list[Path]:
    """Translate images with one generator of a translator checkpoint (`vi_translate.Translator`).

    Each image is translated at the trained resolution and resized back to its own size, written under `out` as
    named by `output_names` (its path relative to the input folder), and a grid `grid_<direction>.png`
    (input | translation) is added.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    inputs = list_inputs(source, limit)
    out = Path(out)
    names = output_names(inputs, source, direction)
    translator = Translator(checkpoint, device=device, batch_size=1)
    written, batches, outputs = [], [], []
    for path, name in zip(inputs, names):
        (image,), batch = translator.prepared([path], direction)
        translated = translator.translate_batch(batch, direction)
        write_image_atomic(to_image(translated[0]).resize(image.size, Image.BICUBIC), out / name)
        written.append(out / name)
        batches.append(batch)
        outputs.append(translated)
    written.append(save_translation_grid(out / grid_name(direction), [torch.cat(batches), torch.cat(outputs)]))
    return written
