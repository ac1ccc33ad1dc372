"""The Python API for using a trained translator: images of one modality as the other.

    import vi_translate
    translator = vi_translate.Translator("runs/translator/synthetic/checkpoints/last.pt", device="auto")
    infrared_views = translator(["a.jpg", "b.jpg"], direction="vis2ir")   # PIL images, each at its input's size

Each image is read in its modality's mode, resized (bicubic) to the crop size the translator was trained at,
translated, and resized back to its own size: what `vi-translate translate` writes, before PNG encoding.
"""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

from reid.data import read_image
from reid.runtime import autocast, resolve_device

from .checkpoint import load_translator
from .data import image_mode, resize_for_model, to_image, to_model_range

DIRECTIONS = ("vis2ir", "ir2vis")
ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]


class Translator:
    """Both generators of a translator checkpoint (`vi-translate train`), in eval mode on `device` ("auto" |
    "cpu" | "cuda" | "cuda:N"); `batch_size` images per forward pass; bf16 autocast on CUDA when `bf16`."""

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | torch.device = "auto", batch_size: int = 16,
                 bf16: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.nets, self.config = load_translator(checkpoint, self.device)
        self.batch_size, self.bf16 = batch_size, bf16

    def __call__(self, images: Sequence[ImageInput], direction: str) -> list[Image.Image]:
        """The translations of image files, PIL images or uint8 arrays ([H, W, 3] or [H, W]) of the source
        modality of `direction` ("vis2ir" | "ir2vis"), as PIL images of their inputs' sizes."""
        results = []
        for start in range(0, len(images), self.batch_size):
            read, batch = self.prepared(images[start:start + self.batch_size], direction)
            translated = self.translate_batch(batch, direction)
            results += [to_image(output).resize(image.size, Image.BICUBIC) for output, image in zip(translated, read)]
        return results

    def prepared(self, images: Sequence[ImageInput], direction: str) -> tuple[list[Image.Image], torch.Tensor]:
        """(the images as read, in the source modality's mode; the batch [B, C, h, w] in [-1, 1] at the trained
        crop size that the generator takes)."""
        mode = image_mode(_check_direction(direction).split("2")[0], self.config.image.ir_channels)
        read = [_as_image(image, mode) for image in images]
        return read, torch.stack([to_model_range(resize_for_model(image, self.config.image)) for image in read])

    def translate_batch(self, batch: torch.Tensor, direction: str) -> torch.Tensor:
        """[B, C, h, w] in [-1, 1] -> the generator's output [B, C', h, w] in [-1, 1], float32 on the CPU."""
        generator = self.nets.g_vis2ir if _check_direction(direction) == "vis2ir" else self.nets.g_ir2vis
        with torch.no_grad(), autocast(self.device, self.bf16):
            return generator(batch.to(self.device)).float().cpu()


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def _as_image(image: ImageInput, mode: str) -> Image.Image:
    """A PIL image in `mode` ("RGB" or "L") from a file path, a PIL image or a uint8 array."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, mode)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"an image must be a file path, a PIL image or a uint8 array, got {type(image).__name__}")
    return image.convert(mode)
