"""Translation metrics: PSNR / SSIM / L1 hand values and numpy formulas, channel handling, KID against hand
values and a numpy transcription over the documented subsets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference_metrics as reference
from vi_translate.metrics import kid, kid_subset_indices, l1, mmd2_unbiased, psnr, ssim


def images(seed: int = 0, batch: int = 2, channels: int = 3, height: int = 32, width: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=generator) * 2 - 1


def test_psnr_identical_is_inf_and_constant_offset_follows_the_formula():
    x = images()
    assert psnr(x, x).shape == (2,) and torch.isinf(psnr(x, x)).all()
    target = torch.zeros(2, 3, 8, 8)
    pred = target + torch.tensor([0.1, 0.5]).view(2, 1, 1, 1)
    expected = [10 * math.log10(4 / 0.1 ** 2), 10 * math.log10(4 / 0.5 ** 2)]  # data range 2 for [-1, 1]
    assert psnr(pred, target).tolist() == pytest.approx(expected, rel=1e-5)
    assert psnr(pred, target, data_range=1.0).tolist() == pytest.approx([20.0, 10 * math.log10(4.0)], rel=1e-5)
    with pytest.raises(ValueError, match="data_range"):
        psnr(pred, target, data_range=0)


def test_l1_hand_value():
    target = torch.zeros(1, 1, 2, 2)
    pred = torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]]])
    assert l1(pred, target).tolist() == pytest.approx([0.5])  # (0.5 + 0.5 + 1 + 0) / 4


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    x = images(seed=1)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    generator = torch.Generator().manual_seed(2)
    noise = torch.randn(x.shape, generator=generator)
    values = [ssim((x + sigma * noise).clamp(-1, 1), x).mean().item() for sigma in (0.05, 0.2, 0.6)]
    assert 1.0 > values[0] > values[1] > values[2]
    with pytest.raises(ValueError, match="larger than 5 pixels"):
        ssim(torch.zeros(1, 3, 5, 5), torch.zeros(1, 3, 5, 5))


def test_ssim_of_flat_images_matches_the_luminance_term():
    """Two flat images have no variance: SSIM = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1) in [0, 1] units."""
    shape = (1, 3, 16, 16)  # float64: in float32 the variance of a flat window is off by ~1e-7, against c2 = 9e-4
    a, b = torch.full(shape, 0.0, dtype=torch.float64), torch.full(shape, 0.5, dtype=torch.float64)  # -> 0.5, 0.75
    c1 = 0.01 ** 2
    expected = (2 * 0.5 * 0.75 + c1) / (0.5 ** 2 + 0.75 ** 2 + c1)
    assert ssim(a, b).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("pred_channels, target_channels, dtype, tolerance", [
    (3, 3, torch.float32, 1e-5), (1, 3, torch.float32, 1e-5), (3, 1, torch.float32, 1e-5),
    (3, 3, torch.float64, 1e-10)])
def test_psnr_ssim_l1_match_numpy_formulas(pred_channels, target_channels, dtype, tolerance):
    """Textured images (a mix of the target and noise) against `reference_metrics`: PSNR, SSIM with its Gaussian
    window, reflected borders and constants, L1; the prediction taken to the target's channels first."""
    target = images(seed=5, channels=target_channels).to(dtype)
    like_target = torch.from_numpy(reference.to_channels(target.numpy(), pred_channels)).to(dtype)
    pred = 0.7 * like_target + 0.3 * images(seed=6, channels=pred_channels).to(dtype)
    expected_pred = reference.to_channels(pred.numpy(), target_channels)
    for metric, formula in ((psnr, reference.psnr), (ssim, reference.ssim), (l1, reference.l1)):
        value = metric(pred, target)
        assert value.dtype == dtype and value.shape == (2,)
        np.testing.assert_allclose(value.numpy(), formula(expected_pred, target.numpy()), rtol=tolerance,
                                   atol=tolerance, err_msg=metric.__name__)


def test_one_and_three_channel_images_are_compared_in_the_targets_channels():
    grey = images(seed=3, channels=1)
    rgb = grey.repeat(1, 3, 1, 1)
    assert torch.isinf(psnr(grey, rgb)).all()  # grey repeated to 3 channels is the target exactly
    assert (psnr(rgb, grey) > 120).all()  # the luma of equal channels is the grey value (up to float32 rounding)
    assert l1(rgb, grey).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    colour = images(seed=4)
    luma = 0.299 * colour[:, :1] + 0.587 * colour[:, 1:2] + 0.114 * colour[:, 2:]
    assert l1(colour, luma).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert ssim(colour, luma).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    with pytest.raises(ValueError, match="differ"):
        l1(images(height=32), images(height=16))


def test_mmd2_hand_values():
    """D = 1, k(x, y) = (x y + 1)^3: k(0, 0) = k(0, 1) = 1, k(1, 1) = 8."""
    zeros, ones, both = torch.zeros(2, 1), torch.ones(2, 1), torch.tensor([[0.0], [1.0]])
    # within {0, 0}: 1; within {1, 1}: 8; across: every pair k(0, 1) = 1 -> 1 + 8 - 2 * 1
    assert mmd2_unbiased(zeros, ones).item() == pytest.approx(7.0)
    # within {0, 1}: k(0, 1) = 1 on both sides; across: (1 + 1 + 1 + 8) / 4 -> 1 + 1 - 2 * 2.75
    assert mmd2_unbiased(both, both).item() == pytest.approx(-3.5)
    batched = mmd2_unbiased(torch.stack([zeros, both]), torch.stack([ones, both]))  # [S, m, D] -> [S]
    assert batched.tolist() == pytest.approx([7.0, -3.5])


def test_kid_matches_numpy_over_the_documented_subsets():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(12, 5, generator=generator, dtype=torch.float64)
    b = torch.randn(9, 5, generator=generator, dtype=torch.float64) + 0.3
    index_a, index_b = kid_subset_indices(12, 9, subset_size=6, num_subsets=7, seed=3)
    draws = reference.kid_subsets(12, 9, subset_size=6, num_subsets=7, seed=3)
    assert index_a.tolist() == [rows_a for rows_a, _ in draws] and index_b.tolist() == [rows_b for _, rows_b in draws]
    mean, std = kid(a, b, subset_size=6, num_subsets=7, seed=3, chunk=3)  # chunks of 3, 3, 1 subsets
    expected_mean, expected_std = reference.kid(a.numpy(), b.numpy(), subset_size=6, num_subsets=7, seed=3)
    assert mean == pytest.approx(expected_mean, rel=1e-12) and std == pytest.approx(expected_std, rel=1e-10)
    expected_mmd2 = reference.mmd2_unbiased(a[:4].numpy(), b[:4].numpy())
    assert mmd2_unbiased(a[:4], b[:4]).item() == pytest.approx(expected_mmd2, rel=1e-12)


def test_kid_of_float32_features_is_computed_in_float64():
    """Features near 30: kernel values ~1e8 whose differences make the MMD; float32 sums are off by ~5e-4."""
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=generator) + 30, torch.randn(6, 4, generator=generator) + 30
    mean, std = kid(a, b, subset_size=6, num_subsets=2)  # every subset is a permutation of all 6 rows
    assert mean == pytest.approx(reference.mmd2_unbiased(a.numpy(), b.numpy()), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-6 * abs(mean))


def test_kid_subsets_are_capped_and_reproducible():
    index_a, index_b = kid_subset_indices(5, 8, subset_size=100, num_subsets=2, seed=1)
    assert index_a.shape == (2, 5)  # min(subset_size, N, M)
    again = kid_subset_indices(5, 8, subset_size=100, num_subsets=2, seed=1)
    assert torch.equal(index_a, again[0]) and torch.equal(index_b, again[1])
    assert not torch.equal(index_b, kid_subset_indices(5, 8, subset_size=100, num_subsets=2, seed=2)[1])
    with pytest.raises(ValueError, match="at least 2"):
        kid(torch.zeros(1, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="same D"):
        kid(torch.zeros(4, 3), torch.zeros(4, 2))


def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted_ones():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 32, generator=generator), torch.randn(400, 32, generator=generator)
    same_mean, same_std = kid(a, b, subset_size=100, num_subsets=50)
    shifted_mean, _ = kid(a, b + 0.5, subset_size=100, num_subsets=50)
    scaled_mean, _ = kid(a, b * 1.5, subset_size=100, num_subsets=50)
    assert abs(same_mean) < 0.02 and same_std > 0
    assert shifted_mean > 0.3 and shifted_mean > 10 * abs(same_mean)
    assert scaled_mean > 0.1
    assert kid(a, b, subset_size=100, num_subsets=1)[1] == 0.0
