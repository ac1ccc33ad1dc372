"""Unpaired visible / infrared training images, in an order that is a pure function of
(seed, epoch, rank), so a resumed run sees exactly the batches an uninterrupted one would."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from reid.data import Record, read_image

from .config import ImageConfig

Item = tuple[int, int, int]  # (visible index, infrared index, augmentation seed)


def to_model_range(image: Image.Image) -> torch.Tensor:
    """PIL image -> float tensor [C, H, W] in [-1, 1]."""
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def to_image(tensor: torch.Tensor) -> Image.Image:
    """Tensor [C, H, W] in [-1, 1] (C = 1 or 3) -> 8-bit PIL image."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().cpu().numpy()
    return Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))


def image_mode(modality: str, ir_channels: int) -> str:
    """PIL mode an image of `modality` is read in: RGB, or L for 1-channel infrared."""
    return "L" if modality == "ir" and ir_channels == 1 else "RGB"


def augment(image: Image.Image, config: ImageConfig, rng: np.random.Generator) -> Image.Image:
    """Resize to the load size, random crop to the crop size, random horizontal flip."""
    image = image.resize((config.load_width, config.load_height), Image.BICUBIC)
    top = int(rng.integers(0, config.load_height - config.crop_height + 1))
    left = int(rng.integers(0, config.load_width - config.crop_width + 1))
    image = image.crop((left, top, left + config.crop_width, top + config.crop_height))
    if config.flip and rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return image


def resize_for_model(image: Image.Image, config: ImageConfig) -> Image.Image:
    """The deterministic view used for samples: resized straight to the crop size."""
    return image.resize((config.crop_width, config.crop_height), Image.BICUBIC)


class UnpairedImages(Dataset):
    """item (vis index, ir index, seed) -> {"vis": [3, H, W], "ir": [C_ir, H, W]} in [-1, 1]."""

    def __init__(self, vis: list[Record], ir: list[Record], config: ImageConfig) -> None:
        if not vis or not ir:
            raise ValueError(f"unpaired training needs images of both modalities, got {len(vis)} visible "
                             f"and {len(ir)} infrared")
        self.vis, self.ir, self.config = vis, ir, config

    def __len__(self) -> int:
        return max(len(self.vis), len(self.ir))

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        vis_index, ir_index, seed = item
        rng = np.random.default_rng(seed)
        vis = augment(read_image(self.vis[vis_index].path, "RGB"), self.config, rng)
        ir = augment(read_image(self.ir[ir_index].path, image_mode("ir", self.config.ir_channels)), self.config, rng)
        return {"vis": to_model_range(vis), "ir": to_model_range(ir)}


@dataclass(frozen=True)
class EpochPlan:
    """The items of one epoch for one rank, in order; `steps` full batches (the remainder is dropped)."""

    items: list[Item]
    batch_size: int

    @property
    def steps(self) -> int:
        return len(self.items) // self.batch_size

    def from_step(self, step: int) -> list[Item]:
        """The items of the batches from `step` on (0-based), for resuming inside an epoch."""
        return self.items[step * self.batch_size: self.steps * self.batch_size]


def plan_epoch(num_vis: int, num_ir: int, *, epoch: int, seed: int, batch_size: int, rank: int = 0,
               world_size: int = 1) -> EpochPlan:
    """Every visible image once in a shuffled order (cycled up to the larger modality's size, as the
    reference's unaligned dataset), each with a random infrared partner and an augmentation seed;
    rank r takes items r, r + world_size, ..."""
    rng = np.random.default_rng([seed, epoch])
    length = max(num_vis, num_ir)
    vis_index = rng.permutation(length) % num_vis
    ir_index = rng.integers(0, num_ir, length)
    seeds = rng.integers(0, 2**62, length)
    per_rank = length // world_size
    items = [(int(v), int(i), int(s)) for v, i, s in zip(vis_index, ir_index, seeds)]
    return EpochPlan(items[rank::world_size][:per_rank], batch_size)
