"""Reference values for the translator metric tests, written from the formulas with numpy and scipy alone.

Nothing here imports `vi_translate`: the tests compare `vi_translate.metrics` and `vi_translate.evaluate` with
these functions on the same arrays. Images are numpy arrays [B, C, H, W] in [-1, 1] (the model range),
features [N, D]; every function computes in float64.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
SSIM_SIGMA, SSIM_TAPS = 1.5, 11  # Wang et al. 2004: 11-tap Gaussian window, sigma 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def luma(images: np.ndarray) -> np.ndarray:
    """[B, 3, H, W] -> [B, 1, H, W]: 0.299 R + 0.587 G + 0.114 B."""
    return np.tensordot(np.asarray(LUMA), images, axes=([0], [1]))[:, None]


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """[B, C, H, W] -> [B, channels, H, W]: unchanged, grey repeated (1 -> 3) or luma (3 -> 1)."""
    have = images.shape[1]
    if have == channels:
        return images
    return np.repeat(images, channels, axis=1) if have == 1 else luma(images)


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 2.0) -> np.ndarray:
    """10 log10(data_range^2 / mean squared error) per image -> [B]."""
    error = ((np.float64(pred) - np.float64(target)) ** 2).reshape(len(pred), -1).mean(1)
    return 10.0 * np.log10(data_range ** 2 / error)


def l1(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean absolute difference per image -> [B]."""
    return np.abs(np.float64(pred) - np.float64(target)).reshape(len(pred), -1).mean(1)


def gaussian_window() -> np.ndarray:
    """The 11 taps exp(-x^2 / (2 * 1.5^2)), x = -5..5, summing to 1 [11]."""
    x = np.arange(SSIM_TAPS) - SSIM_TAPS // 2
    window = np.exp(-(x ** 2) / (2 * SSIM_SIGMA ** 2))
    return window / window.sum()


def _blur(image: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of one [H, W] plane; borders mirrored without repeating the edge
    (scipy "mirror": d c b | a b c d | c b a, torch's "reflect")."""
    window = gaussian_window()
    return ndimage.correlate1d(ndimage.correlate1d(image, window, axis=0, mode="mirror"), window, axis=1,
                               mode="mirror")


def ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean SSIM per image -> [B] (Wang et al. 2004) of [-1, 1] images mapped to [0, 1] (data range 1):
    ((2 mu_x mu_y + c1)(2 s_xy + c2)) / ((mu_x^2 + mu_y^2 + c1)(s_x^2 + s_y^2 + c2)) per pixel and channel,
    local moments under the Gaussian window, c1 = 0.01^2, c2 = 0.03^2; averaged over channels and pixels."""
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    values = []
    for image_x, image_y in zip(np.float64(pred), np.float64(target)):
        maps = []
        for x, y in zip(np.clip((image_x + 1) / 2, 0, 1), np.clip((image_y + 1) / 2, 0, 1)):
            mu_x, mu_y = _blur(x), _blur(y)
            var_x, var_y = _blur(x * x) - mu_x ** 2, _blur(y * y) - mu_y ** 2
            cov = _blur(x * y) - mu_x * mu_y
            maps.append((2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
        values.append(np.mean(maps))
    return np.asarray(values)


def scores(pred: np.ndarray, target: np.ndarray) -> dict:
    """{"psnr", "ssim", "l1": means over images of the per-image values, "images": count}, `pred` first
    brought to the target's channels (what `vi-translate evaluate` reports for one comparison)."""
    pred = to_channels(pred, target.shape[1])
    return {"psnr": psnr(pred, target).mean(), "ssim": ssim(pred, target).mean(), "l1": l1(pred, target).mean(),
            "images": len(target)}


def mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD (Binkowski et al. 2018, eq. 3) with k(x, y) = (x . y / D + 1)^3, sets [m, D]:
    mean of k over pairs i != j within a, plus the same within b, minus twice the mean of k over a x b."""
    a, b = np.float64(a), np.float64(b)
    m, dim = a.shape
    kernel = lambda x, y: (x @ y.T / dim + 1.0) ** 3  # noqa: E731
    within = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))  # noqa: E731
    return float(within(kernel(a, a)) + within(kernel(b, b)) - 2.0 * kernel(a, b).mean())


def kid_subsets(num_a: int, num_b: int, subset_size: int, num_subsets: int, seed: int) -> list[tuple[list, list]]:
    """torchmetrics' KID draw with an explicit CPU generator seeded with `seed`: per subset randperm(num_a)[:m]
    then randperm(num_b)[:m], m = min(subset_size, num_a, num_b)."""
    m = min(subset_size, num_a, num_b)
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(num_subsets):
        rows_a = torch.randperm(num_a, generator=generator)[:m].tolist()
        draws.append((rows_a, torch.randperm(num_b, generator=generator)[:m].tolist()))
    return draws


def kid(a: np.ndarray, b: np.ndarray, subset_size: int, num_subsets: int, seed: int = 0) -> tuple[float, float]:
    """(mean, population std) of `mmd2_unbiased` over the subsets of `kid_subsets`."""
    values = [mmd2_unbiased(a[rows_a], b[rows_b])
              for rows_a, rows_b in kid_subsets(len(a), len(b), subset_size, num_subsets, seed)]
    return float(np.mean(values)), float(np.std(values))
