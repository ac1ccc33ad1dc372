"""Image-translation metrics as pure functions on tensors.

Per-image reconstruction metrics for images in the model range [-1, 1] (what the generators produce):
`psnr`, `ssim`, `l1`, each [B, C, H, W] x [B, C', H, W] -> [B]. A prediction whose channel count differs
from the target's (a 3-channel visible image against a 1-channel infrared one, or the reverse) is first
brought to the target's channel count with `vi_translate.losses.match_channels` (1 -> 3 repeats the grey
channel, 3 -> 1 takes the BT.601 luma), so the comparison always happens in the target's channels.

Distribution metric: `kid`, the Kernel Inception Distance (Binkowski et al., "Demystifying MMD GANs",
2018): the unbiased estimator of the squared MMD with the cubic polynomial kernel
k(x, y) = (x . y / D + 1) ** 3 between two sets of features, averaged over random subsets, as computed by
torchmetrics (`KernelInceptionDistance`) and clean-fid (`kernel_distance`).
"""
from __future__ import annotations

import kornia
import torch
from torch import Tensor

from .losses import match_channels

SSIM_WINDOW = 11


def _pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Check shapes, bring `pred` to the target's channels, compute in float32 (float64 stays)."""
    if pred.dim() != 4 or target.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shapes {tuple(pred.shape)} and {tuple(target.shape)}")
    pred = match_channels(pred, target.shape[1])
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in batch or "
                         "spatial size")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per image: [B, C, H, W] x [B, C', H, W] -> [B] (mean over C, H, W)."""
    pred, target = _pair(pred, target)
    return (pred - target).square().flatten(1).mean(1)


def psnr(pred: Tensor, target: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(data_range^2 / MSE) -> [B].

    pred, target: [B, C, H, W] in [-1, 1], so the data range is 2 (pass 1.0 for images in [0, 1] or 255
    for 8-bit values). Identical images (MSE 0) give +inf, as scikit-image and scikit-learn do: no cap, so
    a mean over a set holding an identical pair is inf as well.
    """
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    error = mse(pred, target)
    return 10.0 * torch.log10(data_range ** 2 / error)  # x / 0 = inf -> log10 = inf


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per image: [B, C, H, W] x [B, C', H, W] -> [B] (mean over C, H, W), in the
    units of the inputs (for [-1, 1] images, half the error in [0, 1] units)."""
    pred, target = _pair(pred, target)
    return (pred - target).abs().flatten(1).mean(1)


def ssim(pred: Tensor, target: Tensor, window_size: int = SSIM_WINDOW) -> Tensor:
    """Mean structural similarity per image -> [B], in [-1, 1] (1 for identical images).

    pred, target: [B, C, H, W] in [-1, 1]. Both are mapped to [0, 1] ((x + 1) / 2, clamped) and compared with
    `kornia.metrics.ssim` (Gaussian window of `window_size` taps, sigma 1.5, max_val 1, so c1 = 0.01^2 and
    c2 = 0.03^2; `padding="same"` with reflection, so H and W must exceed window_size // 2; eps 0 as the
    reference implementations); the SSIM map is averaged over channels and pixels.
    """
    pred, target = _pair(pred, target)
    height, width = target.shape[-2:]
    if min(height, width) <= window_size // 2:
        raise ValueError(f"ssim needs images larger than {window_size // 2} pixels on each side (window "
                         f"{window_size}), got {height}x{width}")
    to_unit = lambda x: ((x + 1.0) / 2.0).clamp(0.0, 1.0)  # noqa: E731
    index_map = kornia.metrics.ssim(to_unit(pred), to_unit(target), window_size, max_val=1.0, eps=0.0,
                                    padding="same")
    return index_map.flatten(1).mean(1)


# --------------------------------------------------------------------------- KID


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x . y / D + 1) ** 3 for all pairs: [..., m, D] x [..., n, D] -> [..., m, n]."""
    return (x @ y.transpose(-1, -2) / x.shape[-1] + 1.0) ** 3


def mmd2_unbiased(a: Tensor, b: Tensor) -> Tensor:
    """Unbiased squared MMD with the cubic polynomial kernel between equal-size sets.

    a, b: [m, D] or a batch of subsets [S, m, D] (m >= 2). Returns a scalar, or [S]:
    sum_{i != j} k(a_i, a_j) / (m (m - 1)) + sum_{i != j} k(b_i, b_j) / (m (m - 1))
    - 2 sum_{i, j} k(a_i, b_j) / m^2. It can be slightly negative when the two sets share a distribution.
    """
    if a.shape != b.shape or a.dim() not in (2, 3):
        raise ValueError(f"a and b must both be [m, D] or [S, m, D] of the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    m = a.shape[-2]
    if m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {m}")
    k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    off_diagonal = lambda k: k.sum((-1, -2)) - k.diagonal(dim1=-2, dim2=-1).sum(-1)  # noqa: E731
    return (off_diagonal(k_aa) + off_diagonal(k_bb)) / (m * (m - 1)) - 2.0 * k_ab.sum((-1, -2)) / m ** 2


def kid_subset_indices(num_a: int, num_b: int, subset_size: int = 100, num_subsets: int = 100,
                       seed: int = 0) -> tuple[Tensor, Tensor]:
    """The rows `kid` averages over: (indices into a [S, m], indices into b [S, m]), m = min(subset_size,
    num_a, num_b), each row of each drawn without replacement.

    Drawn from a CPU `torch.Generator` seeded with `seed`, subset by subset: `randperm(num_a)[:m]` then
    `randperm(num_b)[:m]` (torchmetrics' draw, with an explicit generator), so a seed gives the same subsets
    on every machine.
    """
    for name, value in (("subset_size", subset_size), ("num_subsets", num_subsets)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    m = min(subset_size, num_a, num_b)
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature rows in each set (and subset_size >= 2), got "
                         f"{num_a} and {num_b} rows, subset_size {subset_size}")
    generator = torch.Generator().manual_seed(seed)
    rows_a, rows_b = [], []
    for _ in range(num_subsets):
        rows_a.append(torch.randperm(num_a, generator=generator)[:m])
        rows_b.append(torch.randperm(num_b, generator=generator)[:m])
    return torch.stack(rows_a), torch.stack(rows_b)


def kid(features_a: Tensor, features_b: Tensor, subset_size: int = 100, num_subsets: int = 100,
        seed: int = 0, chunk: int = 16) -> tuple[float, float]:
    """Kernel Inception Distance between two feature sets: (mean, std) of `mmd2_unbiased` over subsets.

    features_a [N, D], features_b [M, D] (any feature extractor; the name comes from Inception features).
    Each of `num_subsets` subsets takes m = min(subset_size, N, M) rows of each set without replacement
    (`kid_subset_indices(N, M, subset_size, num_subsets, seed)`). Computed in float64 on the features'
    device, `chunk` subsets at a time. std is the population standard deviation over subsets (torchmetrics'
    convention; 0 for one subset). The mean is near 0 (and can be slightly negative) for two samples of one
    distribution and grows as the distributions move apart.
    """
    if features_a.dim() != 2 or features_b.dim() != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"features must be [N, D] and [M, D] with the same D, got {tuple(features_a.shape)} "
                         f"and {tuple(features_b.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk!r}")
    index_a, index_b = kid_subset_indices(features_a.shape[0], features_b.shape[0], subset_size, num_subsets, seed)
    a, b = features_a.double(), features_b.double()
    index_a, index_b = index_a.to(a.device), index_b.to(b.device)
    values = torch.cat([mmd2_unbiased(a[index_a[start:start + chunk]], b[index_b[start:start + chunk]])
                        for start in range(0, num_subsets, chunk)])
    return float(values.mean()), float(values.std(correction=0))
