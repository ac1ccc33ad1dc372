"""Image transforms for ReID. Infrared images are read as RGB (3 equal channels), like the community code."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_test_transform(height: int = 288, width: int = 144) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> float tensor [3, height, width]: bilinear resize, to [0, 1], ImageNet mean/std."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height} width={width}")
    return T.Compose([
        T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
