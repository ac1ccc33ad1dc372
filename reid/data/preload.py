"""Images decoded and resized once, kept in memory: for small datasets (the embedded benchmark) whose epochs
would otherwise spend more time decoding JPEGs than training a small network."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torchvision import transforms as T

from reid.runtime import progress as progress_bar

from .io import read_image
from .transforms import IMAGENET_MEAN, IMAGENET_STD


class PreloadedImages:
    """path -> the test transform's image [3, H, W] (bilinear resize to (H, W), ImageNet-normalised), served
    from uint8 pixels [N, 3, H, W] held in memory (N * 3 * H * W bytes: 6 KiB an image at 64x32).

    The resize is the test transform's, so an image served from memory equals one read from disk.
    """

    def __init__(self, paths: Iterable[str], height: int, width: int, *, progress: bool = True) -> None:
        unique = list(dict.fromkeys(str(path) for path in paths))
        resize = T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)
        self.pixels = torch.empty(len(unique), 3, height, width, dtype=torch.uint8)
        for row, path in enumerate(progress_bar(unique, desc="preload images", unit="img",
                                                disable=None if progress else True)):
            array = np.asarray(resize(read_image(path)), dtype=np.uint8)
            self.pixels[row] = torch.from_numpy(array.copy()).permute(2, 0, 1)
        self.rows = {path: row for row, path in enumerate(unique)}
        self.mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, rows: torch.Tensor) -> torch.Tensor:
        """rows [B] (indices in preload order) -> [B, 3, H, W] float32, ImageNet-normalised."""
        return (self.pixels[rows].float() / 255.0 - self.mean) / self.std

    def image(self, path: str) -> torch.Tensor:
        """[3, H, W] float32, ImageNet-normalised; KeyError naming the path when it was not preloaded."""
        try:
            row = self.rows[str(path)]
        except KeyError:
            raise KeyError(f"{path} was not preloaded") from None
        return (self.pixels[row].float() / 255.0 - self.mean) / self.std
