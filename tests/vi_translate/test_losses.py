from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vi_translate.losses import GANLoss, cycle_loss, identity_loss, match_channels
from vi_translate.networks import ResnetGenerator


pytestmark = pytest.mark.usefixtures("one_torch_thread")

PRED = torch.tensor([[0.5, -1.0]])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("mode, target_is_real, for_discriminator, expected", [
    # lsgan: mean((p - t)^2)
    ("lsgan", True, True, ((0.5 - 1) ** 2 + (-1 - 1) ** 2) / 2),   # 2.125
    ("lsgan", False, True, (0.5 ** 2 + 1.0 ** 2) / 2),             # 0.625
    ("lsgan", True, False, 2.125),                                 # the generator wants its fakes called real
    # vanilla: BCE with logits = softplus(-p) for target 1, softplus(p) for target 0
    ("vanilla", True, True, (softplus(-0.5) + softplus(1.0)) / 2),
    ("vanilla", False, True, (softplus(0.5) + softplus(-1.0)) / 2),
    ("vanilla", True, False, (softplus(-0.5) + softplus(1.0)) / 2),
    # hinge: D real mean(relu(1 - p)) = (0.5 + 2) / 2; D fake mean(relu(1 + p)) = (1.5 + 0) / 2; G -mean(p)
    ("hinge", True, True, 1.25),
    ("hinge", False, True, 0.75),
    ("hinge", True, False, 0.25),
])
def test_gan_loss_hand_computed_values(mode, target_is_real, for_discriminator, expected):
    loss = GANLoss(mode)(PRED, target_is_real, for_discriminator=for_discriminator)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_gan_loss_default_mode_is_lsgan_and_unknown_mode_is_an_error():
    assert GANLoss().mode == "lsgan"
    with pytest.raises(ValueError, match="mode"):
        GANLoss("wgan")


def test_hinge_generator_loss_needs_a_real_target():
    with pytest.raises(ValueError, match="target_is_real"):
        GANLoss("hinge")(PRED, False, for_discriminator=False)


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "hinge"])
def test_gan_loss_on_patch_maps_has_no_state_and_a_gradient(mode):
    criterion = GANLoss(mode)
    assert not list(criterion.parameters()) and not list(criterion.buffers()) and not criterion.state_dict()
    prediction = torch.randn(2, 1, 30, 14, dtype=torch.float64, requires_grad=True)
    loss = criterion(prediction, False)
    assert loss.dtype == torch.float64
    loss.backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "hinge"])
def test_gan_loss_of_half_precision_logits_is_float32(mode):
    prediction = torch.randn(2, 1, 6, 2).to(torch.bfloat16)
    expected = GANLoss(mode)(prediction.float(), True)
    loss = GANLoss(mode)(prediction, True)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)


def test_cycle_loss_is_l1_and_checks_shapes():
    real = torch.zeros(1, 1, 2, 2)
    reconstructed = torch.tensor([[[[1.0, -1.0], [0.5, 0.0]]]])
    assert cycle_loss(reconstructed, real).item() == pytest.approx(2.5 / 4)
    with pytest.raises(ValueError, match="reconstructed"):
        cycle_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2))


def test_match_channels_exact_values():
    grey = torch.tensor([[[[0.25, -1.0]]]])                     # [1, 1, 1, 2]
    assert torch.equal(match_channels(grey, 3), torch.tensor([[[[0.25, -1.0]], [[0.25, -1.0]], [[0.25, -1.0]]]]))
    # pixels pure R, pure G, pure B, and doubled B: luma = 0.299, 0.587, 0.114, 0.228
    rgb = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]], [[0.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 2.0]]]])  # [1, 3, 1, 4]
    luma = match_channels(rgb, 1)
    assert luma.shape == (1, 1, 1, 4)
    assert torch.equal(luma, torch.tensor([[[[0.299, 0.587, 0.114, 0.228]]]]))
    # the weights sum to 1: grey stays grey, in [0, 1] and [-1, 1] alike
    torch.testing.assert_close(match_channels(torch.full((2, 3, 4, 4), -0.5), 1), torch.full((2, 1, 4, 4), -0.5))
    same = torch.randn(2, 3, 4, 4)
    assert match_channels(same, 3) is same


def test_match_channels_errors():
    with pytest.raises(ValueError, match="channels"):
        match_channels(torch.zeros(1, 2, 4, 4), 3)
    with pytest.raises(ValueError, match="channels"):
        match_channels(torch.zeros(1, 3, 4, 4), 2)
    with pytest.raises(ValueError, match="channels"):
        match_channels(torch.zeros(1, 3, 4, 4), 0)
    with pytest.raises(ValueError, match="images"):
        match_channels(torch.zeros(3, 4, 4), 1)


def test_identity_loss_with_one_channel_infrared():
    """G_vis2ir (3 -> 1) is fed the ir image repeated to 3 channels and should give it back."""
    torch.manual_seed(0)
    g_vis2ir = ResnetGenerator(3, 1, ngf=8, n_blocks=1)
    ir = torch.rand(2, 1, 32, 16) * 2 - 1
    loss = identity_loss(g_vis2ir, ir, source_channels=3)
    torch.testing.assert_close(loss, (g_vis2ir(ir.repeat(1, 3, 1, 1)) - ir).abs().mean())
    loss.backward()
    grad = g_vis2ir.model[1].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_identity_loss_for_ir2vis_uses_the_luma():
    torch.manual_seed(0)
    g_ir2vis = ResnetGenerator(1, 3, ngf=8, n_blocks=1)
    vis = torch.rand(2, 3, 32, 16) * 2 - 1
    loss = identity_loss(g_ir2vis, vis, source_channels=1)
    torch.testing.assert_close(loss, (g_ir2vis(match_channels(vis, 1)) - vis).abs().mean())
    loss.backward()
    assert g_ir2vis.model[1].weight.grad.abs().sum() > 0


class Luma(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return match_channels(x, 1)


def test_identity_loss_is_zero_for_a_generator_that_passes_infrared_through():
    ir = torch.rand(2, 1, 8, 8)
    assert identity_loss(Luma(), ir, source_channels=3).item() == pytest.approx(0.0, abs=1e-6)
    assert identity_loss(nn.Identity(), ir, source_channels=1).item() == 0.0


def test_identity_loss_rejects_a_generator_for_the_other_domain():
    with pytest.raises(ValueError, match="generator output"):
        identity_loss(nn.Identity(), torch.rand(1, 1, 8, 8), source_channels=3)


def test_cycle_and_identity_losses_under_autocast_are_float32():
    torch.manual_seed(0)
    g_vis2ir, g_ir2vis = ResnetGenerator(3, 1, ngf=8, n_blocks=1), ResnetGenerator(1, 3, ngf=8, n_blocks=1)
    vis, ir = torch.rand(2, 3, 32, 16) * 2 - 1, torch.rand(2, 1, 32, 16) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [cycle_loss(g_ir2vis(g_vis2ir(vis)), vis), identity_loss(g_vis2ir, ir, 3),
                  identity_loss(g_ir2vis, vis, 1)]
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses)
    sum(losses).backward()
    assert g_vis2ir.model[1].weight.grad.abs().sum() > 0 and g_ir2vis.model[1].weight.grad.abs().sum() > 0
