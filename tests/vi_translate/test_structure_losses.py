"""The structure terms between a generator's input and output: 1 - SSIM of the greys, and the agreement of their
per-image normalised Sobel edge magnitudes."""
from __future__ import annotations

import pytest
import torch

from vi_translate.losses import edge_magnitude, edge_structure_loss, grey, ssim_structure_loss, structure_loss
from vi_translate.metrics import ssim

pytestmark = pytest.mark.usefixtures("one_torch_thread")
KINDS = ("ssim", "edges")


def person(channels: int = 3, seed: int = 0) -> torch.Tensor:
    """[2, C, 32, 16] in [-1, 1]: a smooth random field with a bright block, so there are edges to keep."""
    g = torch.Generator().manual_seed(seed)
    field = torch.nn.functional.interpolate(torch.rand(2, channels, 8, 4, generator=g), size=(32, 16), mode="bilinear")
    field[:, :, 8:24, 4:12] += 0.8
    return field.clamp(0, 1) * 2 - 1


@pytest.mark.parametrize("kind", KINDS)
def test_zero_for_identical_greys(kind):
    image = person()
    assert structure_loss(image, image.clone(), kind).item() == pytest.approx(0.0, abs=1e-6)
    # an infrared-like output in one channel, or in three equal ones, that is the input's grey keeps its structure
    assert structure_loss(image, grey(image), kind).item() == pytest.approx(0.0, abs=1e-6)
    assert structure_loss(image, grey(image).repeat(1, 3, 1, 1), kind).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_positive_for_a_shifted_or_edited_output(kind):
    image = person()
    shifted = image.roll(shifts=3, dims=-1)
    edited = image.clone()
    edited[:, :, 2:8, 2:14] = 1.0  # a new bright bar
    for changed in (shifted, edited, person(seed=1)):
        assert structure_loss(image, changed, kind).item() > 0.02
    assert structure_loss(image, shifted, kind) < structure_loss(image, person(seed=1), kind) * 4  # bounded, finite


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("out_channels", [1, 3])
def test_gradient_flows_to_the_output(kind, out_channels):
    source = person()
    output = (person(out_channels, seed=2) * 0.9).requires_grad_()
    structure_loss(source, output, kind).backward()
    assert output.grad is not None and torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0


def test_ssim_loss_is_one_minus_metrics_ssim_of_the_greys():
    source, output = person(3), person(1, seed=3)
    expected = (1 - ssim(grey(output), grey(source))).mean()
    assert ssim_structure_loss(source, output).item() == pytest.approx(expected.item(), abs=1e-7)
    assert ssim_structure_loss(source, output).item() > 0.05


def test_metrics_ssim_is_differentiable():
    target = torch.rand(1, 1, 12, 10, dtype=torch.float64) * 2 - 1
    pred = (torch.rand(1, 1, 12, 10, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ssim(x, target), (pred,))


def test_edges_are_normalised_per_image():
    image = person()
    magnitude = edge_magnitude(image)
    assert magnitude.shape == (2, 1, 32, 16)
    assert torch.allclose(magnitude.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-4) and magnitude.min() >= 0
    # a lower-contrast rendering of the same scene (as infrared against visible) has the same normalised edges
    assert edge_structure_loss(image, image * 0.3).item() == pytest.approx(0.0, abs=1e-4)
    assert edge_structure_loss(image, image * 0.3 + 0.2).item() == pytest.approx(0.0, abs=1e-4)
    # a vertical step: the largest magnitude sits on the two columns around it
    step = torch.full((1, 1, 8, 8), -1.0)
    step[..., 4:] = 1.0
    columns = edge_magnitude(step)[0, 0, 4].argsort(descending=True)[:2]
    assert sorted(columns.tolist()) == [3, 4]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="kind"):
        structure_loss(person(), person(), "gradients")
    with pytest.raises(ValueError, match="same B, H and W"):
        structure_loss(person(), person()[:, :, :16], "edges")
