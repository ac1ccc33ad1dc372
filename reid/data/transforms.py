"""Image transforms for visible-infrared ReID: the test transform, and the training augmentations of the
field's released code (CAJ, Ye et al. ICCV 2021; ADCA, yangbincv/ADCA; PGM, zesenwu23/USL-VI-ReID). Infrared
images are read as RGB (3 equal channels), like that code.

Test: resize (H, W) -> ToTensor -> Normalize(ImageNet) (:func:`build_test_transform`).

CPU path (one PIL image per call, in DataLoader workers; :func:`build_train_transform`)::

    resize (H, W) -> Pad(pad, black) -> RandomCrop(H, W) -> RandomHorizontalFlip(0.5)
    -> [ColorJitter(c, c, c, c)] -> ToTensor -> Normalize(ImageNet) -> ChannelRandomErasing(erasing) -> [channel op]

The reference code builds three pipelines from these steps (ADCA/PGM ``train_sysu.py``). Which one an image gets
is the caller's choice (``channel_op``, ``color_jitter``):

* visible copy A, "colour": no jitter, no channel op;
* visible copy B, "exchanged": ``ColorJitter(0.5, 0.5, 0.5, 0.5)`` in PGM (none in ADCA), then after the erasing
  ``ChannelExchange(gray=2)`` (``channel_op="exchange"``). Each visible image is loaded once and transformed into
  both copies independently (own crop, flip, erasing); both are trained with the same label;
* infrared: ``ChannelAdapGray(0.5)`` after the erasing (``channel_op="adaptive_grey"``), always on in the
  reference code.

ColorJitter acts on the PIL image after the flip and before ToTensor; the channel ops act on the *normalised*
tensor after random erasing, as in the reference code. Random erasing is CAJ's ``ChannelRandomErasing`` (Zhong et
al. parameters sl=0.02, sh=0.4, r1=0.3), not torchvision's ``RandomErasing``: the patch is filled with the constants
0.4914/0.4822/0.4465 (the reference class default), written as-is into the already normalised tensor.
The resize here is bilinear, like the test transform (the reference training transforms use bicubic).

GPU path: ``build_train_transform(..., gpu=True)`` only resizes and normalises; :func:`gpu_augment` then does
padding-crop, flip, colour jitter, erasing and the channel op on the whole batch on the device, in the same order.
Its colour jitter follows torchvision's tensor kernels on float images (the CPU path jitters uint8 PIL images).

Randomness: every random op takes ``generator: torch.Generator | None``; ``None`` uses torch's global RNG, which
``torch.manual_seed`` seeds and DataLoader reseeds per worker (torchvision's crop/flip/jitter use it too).
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
ERASE_FILL = (0.4914, 0.4822, 0.4465)  # reference ChannelRandomErasing default mean, written after normalisation
CHANNEL_OPS = ("exchange", "adaptive_grey")  # ChannelExchange(gray=2), ChannelAdapGray(0.5)
MAX_COLOR_JITTER = 0.5  # torchvision's limit on the hue factor, used for all four ColorJitter strengths


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
    uniformly. ``mean`` defaults to the reference class default 0.4914/0.4822/0.4465 (:data:`ERASE_FILL`), written
    as-is into the (normalised) tensor. Tensor [C, H, W] (C = 1 or 3) in, new tensor out.
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


def _check_augment_args(pad: int, erasing: float, channel_op: str | None, color_jitter: float) -> None:
    """ValueError unless pad >= 0, erasing in [0, 1], channel_op in CHANNEL_OPS or None, color_jitter in [0, 0.5]."""
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if not 0.0 <= erasing <= 1.0:
        raise ValueError(f"erasing probability must be in [0, 1], got {erasing}")
    if channel_op is not None and channel_op not in CHANNEL_OPS:
        raise ValueError(f"channel_op must be None or one of {CHANNEL_OPS}, got {channel_op!r}")
    if not 0.0 <= color_jitter <= MAX_COLOR_JITTER:
        raise ValueError(f"color_jitter must be in [0, {MAX_COLOR_JITTER}] (it is also the hue factor), "
                         f"got {color_jitter}")


def channel_operation(name: str, generator: torch.Generator | None = None) -> Callable:
    """The reference channel op called ``name``: "exchange" -> ChannelExchange(gray=2) (visible copy B),
    "adaptive_grey" -> ChannelAdapGray(0.5) (infrared). Both map a normalised tensor [3, H, W] to [3, H, W]."""
    if name == "exchange":
        return ChannelExchange(gray=2, generator=generator)
    if name == "adaptive_grey":
        return ChannelAdapGray(probability=0.5, generator=generator)
    raise ValueError(f"channel op must be one of {CHANNEL_OPS}, got {name!r}")


def build_train_transform(height: int = 288, width: int = 144, *, pad: int = 10, flip: bool = True,
                          erasing: float = 0.5, channel_op: str | None = None, color_jitter: float = 0.0,
                          gpu: bool = False) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> float tensor [3, height, width], ImageNet-normalised, randomly augmented.

    Steps: bilinear resize (as the test transform), ``Pad(pad)`` with black, ``RandomCrop``, horizontal flip
    (p=0.5, if ``flip``), ``T.ColorJitter(c, c, c, c)`` with c = ``color_jitter`` (if > 0; on the PIL image, as PGM),
    ToTensor, Normalize, ``ChannelRandomErasing(erasing)`` (skipped at 0), then the channel op ``channel_op``
    (see :func:`channel_operation`; None: none). The reference pipelines: visible colour copy
    ``channel_op=None``; visible exchanged copy ``channel_op="exchange"`` (PGM: ``color_jitter=0.5``); infrared
    ``channel_op="adaptive_grey"``.
    ``gpu=True``: resize + ToTensor + Normalize only; every random step (pad, flip, jitter, erasing, channel op) is
    then :func:`gpu_augment`'s job and these arguments are only validated here.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got height={height} width={width}")
    _check_augment_args(pad, erasing, channel_op, color_jitter)
    steps: list[Callable] = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR)]
    if not gpu:
        if pad > 0:
            steps += [T.Pad(pad, fill=0), T.RandomCrop((height, width))]
        if flip:
            steps.append(T.RandomHorizontalFlip(p=0.5))
        if color_jitter > 0:
            c = color_jitter
            steps.append(T.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c))
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not gpu:
        if erasing > 0:
            steps.append(ChannelRandomErasing(probability=erasing))
        if channel_op is not None:
            steps.append(channel_operation(channel_op))
    return T.Compose(steps)


# ---------------------------------------------------------------- batch (GPU) pipeline


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) draws made on the generator's device (CPU for the global RNG), moved to ``device``."""
    source = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=source).to(device)


def _imagenet_stats(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet (mean, std), each [1, 3, 1, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device, dtype=dtype).view(1, 3, 1, 1)
    return mean, std


def _black(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[3] value of a black pixel after ImageNet normalisation (what torchvision's Pad(fill=0) gives)."""
    mean, std = _imagenet_stats(device, dtype)
    return (-mean / std).view(3)


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


# ---------------------------------------------------------------- batch colour jitter (torchvision tensor semantics)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1, 1, 1], to broadcast one value per image over [B, C, H, W]."""
    return values.view(-1, 1, 1, 1)


def _blend(images: torch.Tensor, other: torch.Tensor | float, factor: torch.Tensor) -> torch.Tensor:
    """torchvision ``_blend`` per image: factor * images + (1 - factor) * other, clamped to [0, 1].

    images [B, 3, H, W]; other broadcastable to it; factor [B]."""
    f = _per_image(factor)
    return (f * images + (1.0 - f) * other).clamp(0.0, 1.0)


def _grey_channel(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 1, H, W]: 0.2989 R + 0.587 G + 0.114 B (torchvision ``rgb_to_grayscale``)."""
    weights = torch.tensor(GREY_WEIGHTS, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def _adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1], factor [B] -> [B, 3, H, W]: blend with black."""
    return _blend(images, 0.0, factor)


def _adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1], factor [B] -> [B, 3, H, W]: blend with each image's mean grey level."""
    return _blend(images, _grey_channel(images).mean(dim=(1, 2, 3), keepdim=True), factor)


def _adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1], factor [B] -> [B, 3, H, W]: blend with the grey image."""
    return _blend(images, _grey_channel(images), factor)


def _rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> [B, 3, H, W] (h, s, v), all in [0, 1] (torchvision's ``_rgb_to_hsv``).

    Grey pixels (max == min) get h = s = 0; ties between maxima resolve R, then G, then B."""
    r, g, b = images.unbind(1)
    maxc, minc = images.amax(1), images.amin(1)
    delta = maxc - minc
    flat = delta == 0
    ones = torch.ones_like(maxc)
    s = delta / torch.where(flat, ones, maxc)
    rc, gc, bc = ((maxc.unsqueeze(1) - images) / torch.where(flat, ones, delta).unsqueeze(1)).unbind(1)
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    return torch.stack((torch.fmod(h / 6.0 + 1.0, 1.0), s, maxc), 1)


# rows R, G, B; column: hue sector 0..5; entries index the stack (v, p, q, t) of _hsv_to_rgb
_HSV_SECTORS = ((0, 2, 1, 1, 3, 0), (3, 0, 0, 2, 1, 1), (1, 1, 3, 0, 0, 2))


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] (h, s, v) in [0, 1] -> [B, 3, H, W] RGB in [0, 1] (torchvision's ``_hsv_to_rgb``)."""
    h, s, v = hsv.unbind(1)
    h6 = h * 6.0
    sector = torch.floor(h6)
    frac = h6 - sector
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * frac)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - frac))).clamp(0.0, 1.0)
    table = torch.tensor(_HSV_SECTORS, device=hsv.device)                      # [3, 6]
    select = table[:, sector.long().remainder(6)].movedim(0, 1)                # [B, 3, H, W]
    return torch.stack((v, p, q, t), 1).gather(1, select)


def _adjust_hue(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] in [0, 1], factor [B] in [-0.5, 0.5] -> [B, 3, H, W]: hue shifted by factor (mod 1) in HSV."""
    h, s, v = _rgb_to_hsv(images).unbind(1)
    shifted = torch.remainder(h + factor.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack((shifted, s, v), 1))


# torchvision ColorJitter's op ids: 0 brightness, 1 contrast, 2 saturation, 3 hue
_JITTER_KERNELS = (_adjust_brightness, _adjust_contrast, _adjust_saturation, _adjust_hue)


def _color_jitter(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """torchvision ``ColorJitter`` on each image of a batch, with given factors and op order.

    images [B, 3, H, W] in [0, 1]; factors [B, 4] (brightness, contrast, saturation, hue); order [B, 4] long, per
    row a permutation of the op ids 0..3 (torchvision's ``fn_idx``). Returns [B, 3, H, W] in [0, 1].
    Vectorised: at each of the 4 positions every op is computed for the whole batch and selected per image.
    """
    out = images
    for position in range(len(_JITTER_KERNELS)):
        op_here = order[:, position]
        for op, kernel in enumerate(_JITTER_KERNELS):
            out = torch.where(_per_image(op_here == op), kernel(out, factors[:, op]), out)
    return out


def _jitter_params(b: int, strength: float, generator: torch.Generator | None,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ColorJitter(strength x 4) draws: factors [B, 4] (brightness, contrast, saturation ~
    U[max(0, 1 - c), 1 + c], hue ~ U[-c, c]) and a uniformly random order [B, 4] of the op ids 0..3."""
    u = _rand((b, 8), generator, device)
    low = max(0.0, 1.0 - strength)
    scales = low + (1.0 + strength - low) * u[:, :3]
    hue = strength * (2.0 * u[:, 3:4] - 1.0)
    return torch.cat([scales, hue], 1), u[:, 4:].argsort(1)


def _jitter_normalised(images: torch.Tensor, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    """ImageNet-normalised [B, 3, H, W] -> the same after :func:`_color_jitter` with random per-image draws.

    The de-normalised images are clamped to [0, 1] (they came from [0, 1] images) before jittering."""
    mean, std = _imagenet_stats(images.device, images.dtype)
    factors, order = _jitter_params(images.shape[0], strength, generator, images.device)
    images01 = (images * std + mean).clamp(0.0, 1.0)
    return (_color_jitter(images01, factors.to(images.dtype), order) - mean) / std


# ---------------------------------------------------------------- batch channel ops and gpu_augment


def _channel_choices(name: str, b: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """[B] long outcome per image: 0/1/2 copy R/G/B, 3 grey, 4 unchanged.

    "exchange": randint(0, 2) (ChannelExchange(gray=2)); "adaptive_grey": randint(0, 3), where 3 is grey with
    probability 0.5 and unchanged otherwise (ChannelAdapGray(0.5))."""
    u = _rand((b, 2), generator, device)
    if name == "exchange":
        return (u[:, 0] * 3).long().clamp(max=2)
    idx = (u[:, 0] * 4).long().clamp(max=3)
    return torch.where((idx == 3) & (u[:, 1] >= 0.5), torch.full_like(idx, 4), idx)


def _apply_channel_choices(images: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
    """images [B, 3, H, W], choice [B] from :func:`_channel_choices` -> [B, 3, H, W]: the chosen channel (or grey)
    copied to all three channels, or the image unchanged (choice 4)."""
    b = images.shape[0]
    options = torch.cat([images, _grey_channel(images)], 1)                   # [B, 4, H, W]: R, G, B, grey
    chosen = options.gather(1, choice.clamp(max=3).view(b, 1, 1, 1).expand(b, 1, *images.shape[2:]))
    return torch.where(_per_image(choice == 4), images, chosen.expand_as(images))


def gpu_augment(images: torch.Tensor, *, pad: int = 10, flip: bool = True, erasing: float = 0.5,
                generator: torch.Generator | None = None, channel_op: str | None = None,
                color_jitter: float = 0.0) -> torch.Tensor:
    """Batch version of the CPU training augmentations on normalised images [B, 3, H, W] (CUDA or CPU).

    Per image, independently and in the CPU order: black padding by ``pad`` + random (H, W) crop, horizontal flip
    with p=0.5, ColorJitter(c, c, c, c) with c = ``color_jitter`` (if > 0; torchvision's tensor kernels on the
    de-normalised image, see :func:`_color_jitter`), ``ChannelRandomErasing``-style erasing with probability
    ``erasing`` (fill 0.4914/0.4822/0.4465, CAJ parameters, 100 vectorised tries), then ``channel_op`` on every
    image ("exchange": ChannelExchange(gray=2), "adaptive_grey": ChannelAdapGray(0.5), None: none).
    Pure torch (vectorised gather / masks) rather than kornia.augmentation: kornia draws from the global RNG only
    and fills erased pixels with one scalar, while this needs ``generator`` and per-channel fills.
    Random draws are made on ``generator``'s device (CPU when None: torch's global RNG) and moved to the images.
    Returns a new tensor [B, 3, H, W]; the input is not modified.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"gpu_augment expects images [B, 3, H, W], got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"gpu_augment expects normalised float images, got dtype {images.dtype}")
    _check_augment_args(pad, erasing, channel_op, color_jitter)
    b, _, h, w = images.shape
    out = _pad_crop_flip(images, pad, flip, generator)
    if color_jitter > 0:
        out = _jitter_normalised(out, color_jitter, generator)
    if erasing > 0:
        mask = _erase_boxes(b, h, w, erasing, generator, images.device)
        fill = torch.tensor(ERASE_FILL, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        out = torch.where(mask, fill, out)
    if channel_op is not None:
        out = _apply_channel_choices(out, _channel_choices(channel_op, b, generator, images.device))
    return out
