"""Image transforms for visible-infrared ReID: the test transform, and the training augmentations
following CAJ (Ye et al., ICCV 2021) and ADCA. Infrared images are read as RGB (3 equal channels), like
the community code.

Test: resize (H, W) -> ToTensor -> Normalize(ImageNet) (:func:`build_test_transform`).

CPU path (one PIL image per call, in DataLoader workers)::

    resize (H, W) -> Pad(pad) -> RandomCrop(H, W) -> RandomHorizontalFlip -> ToTensor -> Normalize(ImageNet)
    -> ChannelRandomErasing(erasing) -> [channel augmentation]

The community code (CAJ ``data_loader.py``, ADCA ``train_sysu.py``) runs its channel operations on the
*normalised* tensor, after random erasing; this module keeps that order:

* visible, channel-augmented view: ``ChannelRandomErasing(0.5)`` then ``ChannelExchange(gray=2)``;
* infrared: ``ChannelRandomErasing(0.5)`` then ``ChannelAdapGray(probability=0.5)``.

Random erasing is CAJ's ``ChannelRandomErasing`` (Zhong et al. parameters sl=0.02, sh=0.4, r1=0.3), not
torchvision's ``RandomErasing``: the patch is filled with constant per-channel values (the ImageNet means
0.485/0.456/0.406, written into the already normalised tensor exactly as the community code does).

GPU path: ``build_train_transform(..., gpu=True)`` only resizes and normalises; :func:`gpu_augment` then does
padding-crop, flip, erasing and (optionally) the channel operations on the whole batch on the device.

Randomness: every random op takes ``generator: torch.Generator | None``; ``None`` uses torch's global RNG, which
``torch.manual_seed`` seeds and DataLoader reseeds per worker (torchvision's crop/flip use it too).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from PIL import Image
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)
ERASE_FILL = IMAGENET_MEAN  # CAJ: ChannelRandomErasing(mean=...) values, written after normalisation
_MODALITIES = ("vis", "ir")


def build_test_transform(height: int = 288, width: int = 144) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> float tensor [3, height, width]: bilinear resize, to [0, 1], ImageNet mean/std."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height} width={width}")
    return T.Compose([
        T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


# ---------------------------------------------------------------- RNG helpers


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    """One float uniform in [low, high)."""
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """One int uniform in [low, high] (inclusive, like Python's random.randint used by CAJ)."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


def _check_rgb(img: torch.Tensor, name: str) -> None:
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"{name} expects a tensor [3, H, W], got shape {tuple(img.shape)}")


def _copy_channel(img: torch.Tensor, channel: int) -> torch.Tensor:
    """[3, H, W] -> [3, H, W] with every channel equal to img[channel]."""
    return img[channel:channel + 1].expand_as(img).clone()


def _grey(img: torch.Tensor) -> torch.Tensor:
    """[3, H, W] -> [3, H, W] with every channel 0.2989 R + 0.587 G + 0.114 B."""
    r, g, b = GREY_WEIGHTS
    grey = r * img[0] + g * img[1] + b * img[2]
    return grey.unsqueeze(0).expand_as(img).clone()


# ---------------------------------------------------------------- CAJ channel operations


class ChannelExchange:
    """CAJ ``ChannelExchange(gray)``: idx = randint(0, gray) inclusive; 0/1/2 copies R/G/B to all channels,
    idx >= 3 turns the image grey (0.2989 R + 0.587 G + 0.114 B).

    With the community default ``gray=2`` the outcome is R, G or B with probability 1/3 each and never grey.
    Tensor [3, H, W] in, new tensor [3, H, W] out (the input is not modified).
    """

    def __init__(self, gray: int = 2, generator: torch.Generator | None = None) -> None:
        if gray < 0:
            raise ValueError(f"ChannelExchange gray must be >= 0, got {gray}")
        self.gray = int(gray)
        self.generator = generator

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        _check_rgb(img, "ChannelExchange")
        idx = _randint(0, self.gray, self.generator)
        return _copy_channel(img, idx) if idx < 3 else _grey(img)

    def __repr__(self) -> str:
        return f"ChannelExchange(gray={self.gray})"


class ChannelAdapGray:
    """CAJ ``ChannelAdapGray(probability)``: idx = randint(0, 3) inclusive; 0/1/2 copy R/G/B to all channels;
    idx 3 turns the image grey with ``probability`` and leaves it unchanged otherwise.

    So each single channel has probability 1/4, grey probability/4, identity (1 - probability)/4.
    Tensor [3, H, W] in, new tensor [3, H, W] out.
    """

    def __init__(self, probability: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"ChannelAdapGray probability must be in [0, 1], got {probability}")
        self.probability = float(probability)
        self.generator = generator

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        _check_rgb(img, "ChannelAdapGray")
        idx = _randint(0, 3, self.generator)
        if idx < 3:
            return _copy_channel(img, idx)
        if torch.rand((), generator=self.generator).item() < self.probability:
            return _grey(img)
        return img.clone()

    def __repr__(self) -> str:
        return f"ChannelAdapGray(probability={self.probability})"


class ChannelRandomErasing:
    """CAJ ``ChannelRandomErasing``: with ``probability``, erase one rectangle filled with ``mean[c]`` per channel.

    Zhong et al. sampling as in CAJ: up to 100 tries of area fraction U(sl, sh) and aspect ratio U(r1, 1/r1);
    h = round(sqrt(area * ratio)), w = round(sqrt(area / ratio)); the first try with h < H and w < W is placed
    uniformly. ``mean`` defaults to the ImageNet means (CAJ's class default is the CIFAR means 0.4914/0.4822/0.4465,
    numerically almost the same). Tensor [C, H, W] (C = 1 or 3) in, new tensor out.
    """

    def __init__(self, probability: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 mean: Sequence[float] = ERASE_FILL, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"ChannelRandomErasing probability must be in [0, 1], got {probability}")
        if not 0.0 < sl <= sh < 1.0 or not 0.0 < r1 <= 1.0:
            raise ValueError(f"ChannelRandomErasing needs 0 < sl <= sh < 1 and 0 < r1 <= 1, got {sl}, {sh}, {r1}")
        if len(mean) != 3:
            raise ValueError(f"ChannelRandomErasing mean needs 3 values, got {list(mean)}")
        self.probability, self.sl, self.sh, self.r1 = float(probability), float(sl), float(sh), float(r1)
        self.mean = tuple(float(m) for m in mean)
        self.generator = generator

    def _box(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        """(top, left, h, w) of the rectangle to erase, or None when 100 tries do not fit."""
        for _ in range(100):
            area = _uniform(self.sl, self.sh, self.generator) * height * width
            ratio = _uniform(self.r1, 1.0 / self.r1, self.generator)
            h = int(round(math.sqrt(area * ratio)))
            w = int(round(math.sqrt(area / ratio)))
            if w < width and h < height:
                return _randint(0, height - h, self.generator), _randint(0, width - w, self.generator), h, w
        return None

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.dim() != 3 or img.shape[0] not in (1, 3):
            raise ValueError(f"ChannelRandomErasing expects a tensor [1 or 3, H, W], got shape {tuple(img.shape)}")
        if torch.rand((), generator=self.generator).item() >= self.probability:
            return img
        box = self._box(img.shape[1], img.shape[2])
        if box is None:
            return img
        top, left, h, w = box
        out = img.clone()
        for c in range(img.shape[0]):
            out[c, top:top + h, left:left + w] = self.mean[c]
        return out

    def __repr__(self) -> str:
        return (f"ChannelRandomErasing(probability={self.probability}, sl={self.sl}, sh={self.sh}, r1={self.r1}, "
                f"mean={self.mean})")


# ---------------------------------------------------------------- CPU pipeline


def _check_train_args(height: int, width: int, pad: int, erasing: float, modality: str) -> None:
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height} width={width}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if not 0.0 <= erasing <= 1.0:
        raise ValueError(f"erasing probability must be in [0, 1], got {erasing}")
    if modality not in _MODALITIES:
        raise ValueError(f"modality must be one of {_MODALITIES}, got {modality!r}")


def channel_augmentation(modality: str, generator: torch.Generator | None = None) -> Callable:
    """CAJ's channel op for a modality: "vis" -> ChannelExchange(gray=2), "ir" -> ChannelAdapGray(0.5)."""
    if modality not in _MODALITIES:
        raise ValueError(f"modality must be one of {_MODALITIES}, got {modality!r}")
    if modality == "vis":
        return ChannelExchange(gray=2, generator=generator)
    return ChannelAdapGray(probability=0.5, generator=generator)


def build_train_transform(height: int = 288, width: int = 144, *, pad: int = 10, flip: bool = True,
                          erasing: float = 0.5, channel_augment: bool = False, modality: str = "vis",
                          gpu: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> float tensor [3, height, width], ImageNet-normalised, randomly augmented.

    Steps: bilinear resize (as the test transform), ``Pad(pad)`` with black, ``RandomCrop``, horizontal flip
    (p=0.5, if ``flip``), ToTensor, Normalize, ``ChannelRandomErasing(erasing)`` (skipped at 0), then, when
    ``channel_augment``, CAJ's channel op of ``modality`` (see :func:`channel_augmentation`); the CAJ/ADCA
    infrared transform always has ``ChannelAdapGray``, here it is behind ``channel_augment`` for both modalities.
    ``gpu=True``: resize + ToTensor + Normalize only; every random step (pad, flip, erasing, channel ops) is
    then :func:`gpu_augment`'s job and these arguments are not used here.
    """
    _check_train_args(height, width, pad, erasing, modality)
    steps: list[Callable] = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)]
    if not gpu:
        if pad > 0:
            steps += [T.Pad(pad, fill=0), T.RandomCrop((height, width))]
        if flip:
            steps.append(T.RandomHorizontalFlip(p=0.5))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not gpu:
        if erasing > 0:
            steps.append(ChannelRandomErasing(probability=erasing))
        if channel_augment:
            steps.append(channel_augmentation(modality))
    return T.Compose(steps)


# ---------------------------------------------------------------- batch (GPU) pipeline


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) draws made on the generator's device (CPU for the global RNG), moved to ``device``."""
    source = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=source).to(device)


def _black(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[3] value of a black pixel after ImageNet normalisation (what torchvision's Pad(fill=0) gives)."""
    mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype)
    std = torch.tensor(IMAGENET_STD, device=device, dtype=dtype)
    return -mean / std


def _pad_crop_flip(images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 3, H, W]: black padding, one random (H, W) crop and optional flip per image."""
    b, c, h, w = images.shape
    device = images.device
    rows = torch.arange(h, device=device).expand(b, h)
    cols = torch.arange(w, device=device).expand(b, w)
    source = images
    if pad > 0:
        source = _black(device, images.dtype).view(1, c, 1, 1).expand(b, c, h + 2 * pad, w + 2 * pad).clone()
        source[:, :, pad:pad + h, pad:pad + w] = images
        offsets = (_rand((b, 2), generator, device) * (2 * pad + 1)).long().clamp_(max=2 * pad)
        rows = rows + offsets[:, :1]
        cols = cols + offsets[:, 1:]
    if flip:
        flipped = _rand((b, 1), generator, device) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    wp = source.shape[3]
    out = source.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, wp))
    return out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def _erase_boxes(b: int, h: int, w: int, p: float, generator: torch.Generator | None,
                 device: torch.device, tries: int = 100) -> torch.Tensor:
    """[B, 1, H, W] bool mask of one CAJ erasing rectangle per image (probability p, sl=0.02, sh=0.4, r1=0.3)."""
    sl, sh, r1 = 0.02, 0.4, 0.3
    u = _rand((b, tries, 4), generator, device).double()
    area = (sl + (sh - sl) * u[..., 0]) * h * w
    ratio = r1 + (1.0 / r1 - r1) * u[..., 1]
    bh = torch.round(torch.sqrt(area * ratio)).long()
    bw = torch.round(torch.sqrt(area / ratio)).long()
    fits = (bh < h) & (bw < w)
    first = torch.where(fits.any(1), fits.long().argmax(1), torch.zeros(b, dtype=torch.long, device=device))
    pick = first.view(b, 1)
    bh, bw = bh.gather(1, pick), bw.gather(1, pick)
    top = (u[..., 2].gather(1, pick) * (h - bh + 1)).long().clamp(min=0)
    left = (u[..., 3].gather(1, pick) * (w - bw + 1)).long().clamp(min=0)
    apply = (_rand((b, 1), generator, device) < p) & fits.any(1, keepdim=True)
    r = torch.arange(h, device=device).view(1, h, 1)
    c = torch.arange(w, device=device).view(1, 1, w)
    t, lf = top.view(b, 1, 1), left.view(b, 1, 1)
    inside = (r >= t) & (r < t + bh.view(b, 1, 1)) & (c >= lf) & (c < lf + bw.view(b, 1, 1))
    return (inside & apply.view(b, 1, 1)).unsqueeze(1)


def _channel_ops(images: torch.Tensor, is_ir: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Batched CAJ channel ops: visible rows ChannelExchange(gray=2), infrared rows ChannelAdapGray(0.5)."""
    b = images.shape[0]
    device = images.device
    u = _rand((b, 2), generator, device)
    vis_idx = (u[:, 0] * 3).long().clamp(max=2)          # randint(0, 2)
    ir_idx = (u[:, 0] * 4).long().clamp(max=3)           # randint(0, 3); 3 -> grey with p 0.5, else identity
    ir_idx = torch.where((ir_idx == 3) & (u[:, 1] >= 0.5), torch.full_like(ir_idx, 4), ir_idx)
    idx = torch.where(is_ir.to(device), ir_idx, vis_idx)
    weights = torch.tensor(GREY_WEIGHTS, device=device, dtype=images.dtype).view(1, 3, 1, 1)
    grey = (images * weights).sum(1, keepdim=True)
    options = torch.cat([images[:, 0:1], images[:, 1:2], images[:, 2:3], grey], 1)  # [B, 4, H, W]
    chosen = options.gather(1, idx.clamp(max=3).view(b, 1, 1, 1).expand(b, 1, *images.shape[2:]))
    return torch.where((idx == 4).view(b, 1, 1, 1), images, chosen.expand_as(images))


def gpu_augment(images: torch.Tensor, *, pad: int = 10, flip: bool = True, erasing: float = 0.5,
                generator: torch.Generator | None = None, channel_augment: bool = False,
                is_ir: torch.Tensor | None = None) -> torch.Tensor:
    """Batch version of the CPU training augmentations on normalised images [B, 3, H, W] (CUDA or CPU).

    Per image, independently: black padding by ``pad`` + random (H, W) crop, horizontal flip with p=0.5,
    ``ChannelRandomErasing``-style erasing with probability ``erasing`` (fill 0.485/0.456/0.406, CAJ parameters,
    100 vectorised tries), then, with ``channel_augment``, CAJ's channel op chosen by ``is_ir`` [B] bool
    (False -> ChannelExchange(gray=2), True -> ChannelAdapGray(0.5); required then).
    Pure torch (vectorised gather / masks) rather than kornia.augmentation: kornia draws from the global RNG only
    and fills erased pixels with one scalar, while this needs ``generator`` and per-channel fills.
    Random draws are made on ``generator``'s device (CPU when None: torch's global RNG) and moved to the images.
    Returns a new tensor [B, 3, H, W]; the input is not modified.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"gpu_augment expects images [B, 3, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"gpu_augment expects normalised float images, got dtype {images.dtype}")
    if pad < 0 or not 0.0 <= erasing <= 1.0:
        raise ValueError(f"gpu_augment needs pad >= 0 and erasing in [0, 1], got pad={pad} erasing={erasing}")
    if channel_augment and (is_ir is None or tuple(is_ir.shape) != (images.shape[0],)):
        raise ValueError("gpu_augment with channel_augment=True needs is_ir, a bool tensor [B] (True = infrared)")
    b, _, h, w = images.shape
    out = _pad_crop_flip(images, pad, flip, generator)
    if erasing > 0:
        mask = _erase_boxes(b, h, w, erasing, generator, images.device)
        fill = torch.tensor(ERASE_FILL, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        out = torch.where(mask, fill, out)
    if channel_augment:
        out = _channel_ops(out, is_ir.bool(), generator)
    return out
