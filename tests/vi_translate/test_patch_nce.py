"""PatchNCE (CUT): the InfoNCE of one layer, the encoder taps, the projection heads and the whole term against a
transcription of CUT's released code (`reference_cut.py`) on the same tensors, value and gradient."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import reference_cut as cut
from vi_translate.losses import draw_patch_ids, match_channels, patch_nce, patch_nce_loss
from vi_translate.networks import CUT_NCE_LAYERS, PatchSampleMLP, ResnetGenerator, l2_normalise

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LAYERS = [0, 4, 7, 10, 11]  # every kind of tap of a 2-block generator: padded input, both downsamplings, blocks


def unit_rows(*shape: int, seed: int = 0) -> torch.Tensor:
    return l2_normalise(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))


def test_patch_nce_loss_equals_cuts_patchnceloss_value_and_gradient():
    batch, patches, dim = 3, 7, 5
    q = unit_rows(batch, patches, dim, seed=1).requires_grad_()
    k = unit_rows(batch, patches, dim, seed=2).requires_grad_()
    ours = patch_nce_loss(q, k, temperature=0.07)
    q_ref, k_ref = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    reference = cut.PatchNCELoss(batch, nce_T=0.07)(q_ref.flatten(0, 1), k_ref.flatten(0, 1)).view(batch, patches)
    assert ours.shape == (batch, patches)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    ours.mean().backward()
    reference.mean().backward()
    torch.testing.assert_close(q.grad, q_ref.grad, rtol=1e-12, atol=1e-12)
    assert k.grad is None and k_ref.grad is None  # the keys are detached in both


def test_the_positive_is_the_same_location_and_the_negatives_the_same_images_other_locations():
    temperature = 0.07
    basis = torch.eye(3, dtype=torch.float64)[None]  # one image, P = 3 orthonormal patches
    # q = k: positive logit 1, the two other locations 0, the diagonal masked to -10 (CUT's rule)
    expected = math.log(1 + 2 * math.exp(-1 / temperature) + math.exp(-11 / temperature))
    torch.testing.assert_close(patch_nce_loss(basis, basis, temperature),
                               torch.full((1, 3), expected, dtype=torch.float64))
    # keys at other locations: the positive (same location) is now orthogonal -> a large loss
    shifted = basis.roll(1, dims=1)
    assert patch_nce_loss(basis, shifted, temperature).min() > 10 * expected
    # negatives come from the same image only: another image's keys change nothing for image 0
    q, k = unit_rows(2, 6, 4, seed=3), unit_rows(2, 6, 4, seed=4)
    other = k.clone()
    other[1] = unit_rows(6, 4, seed=5)
    torch.testing.assert_close(patch_nce_loss(q, k)[0], patch_nce_loss(q, other)[0])
    with pytest.raises(ValueError, match="feat_q and feat_k"):
        patch_nce_loss(q, k[:, :5])


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")  # CUT's torch.tensor(patch_id) on its own ids
@pytest.mark.parametrize("in_channels, out_channels", [(3, 3), (3, 1), (1, 3)])
def test_patch_nce_equals_cuts_calculate_nce_loss_value_and_gradient(in_channels, out_channels):
    """The whole term on the same generator, heads and images: our patch locations are drawn from a seeded generator,
    the transcription is given the same ones; the output is brought to the encoder's channels for it
    (match_channels)."""
    torch.manual_seed(0)
    generator = ResnetGenerator(in_channels, out_channels, ngf=4, n_blocks=2).double()
    heads = PatchSampleMLP(generator.encoder_channels(LAYERS), units=16).double()
    source = torch.rand(2, in_channels, 32, 16, dtype=torch.float64) * 2 - 1
    output = generator(source).detach().requires_grad_()  # what the generator made of it, as a leaf
    output_ref = output.detach().clone().requires_grad_()

    ours = patch_nce(generator, heads, source, output, LAYERS, num_patches=24, temperature=0.07,
                     patch_generator=torch.Generator().manual_seed(7))
    ours.backward()
    parameters = lambda: [*generator.named_parameters(), *heads.named_parameters()]  # noqa: E731
    our_grads = {name: p.grad for name, p in parameters()}
    generator.zero_grad(set_to_none=True)
    heads.zero_grad(set_to_none=True)

    ids = draw_patch_ids(generator.encode(source, LAYERS), 24, torch.Generator().manual_seed(7))
    mlps = [getattr(heads, f"mlp_{i}") for i in range(len(LAYERS))]
    reference = cut.calculate_nce_loss(generator.model, mlps, source, match_channels(output_ref, in_channels), LAYERS,
                                       batch_size=2, num_patches=24, nce_T=0.07,
                                       patch_ids=[i.numpy() for i in ids])  # CUT draws numpy arrays
    reference.backward()
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(output.grad, output_ref.grad, rtol=1e-9, atol=1e-12)
    for name, p in parameters():  # the decoder's parameters have none in both
        assert (our_grads[name] is None) == (p.grad is None), name
        if p.grad is not None:
            torch.testing.assert_close(our_grads[name], p.grad, rtol=1e-9, atol=1e-12, msg=name)
    assert all(our_grads[name].abs().sum() > 0 for name in our_grads if name.startswith("mlp_"))
    assert our_grads["model.1.weight"].abs().sum() > 0  # the encoder learns from the queries


def test_patch_locations_are_drawn_once_per_layer_and_shared_by_input_and_output():
    """Each head sees the input's samples, then the output's: with the output equal to the input they are the same
    rows, which they are only if one set of locations serves both."""
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 3, ngf=4, n_blocks=2)
    heads = PatchSampleMLP(generator.encoder_channels(LAYERS), units=8)
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(LAYERS))}
    for i in range(len(LAYERS)):
        getattr(heads, f"mlp_{i}").register_forward_hook(lambda m, args, out, i=i: seen[i].append(args[0].detach()))
    image = torch.rand(2, 3, 32, 16) * 2 - 1
    rng_before = torch.get_rng_state()
    patch_generator = torch.Generator().manual_seed(3)
    patch_nce(generator, heads, image, image, LAYERS, num_patches=10, patch_generator=patch_generator)
    for i in seen:
        keys, queries = seen[i]
        assert keys.shape[:2] == (2, min(10, keys.shape[1])) and torch.equal(keys, queries)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the draws come from the patch generator only
    drawn = draw_patch_ids(generator.encode(image, LAYERS), 10, torch.Generator().manual_seed(3))
    assert [len(i) for i in drawn] == [10] * len(LAYERS) and len(set(drawn[0].tolist())) == 10
    assert torch.equal(patch_generator.get_state(), _advanced(torch.Generator().manual_seed(3), generator, image))


def _advanced(rng: torch.Generator, generator: ResnetGenerator, image: torch.Tensor) -> torch.Tensor:
    draw_patch_ids(generator.encode(image, LAYERS), 10, rng)
    return rng.get_state()


def test_encoder_taps_are_cuts_forward_with_encode_only():
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 1, ngf=4, n_blocks=2)
    image = torch.rand(2, 3, 32, 16)
    ours = generator.encode(image, LAYERS)
    reference = cut.encode_only(generator.model, image, LAYERS)
    assert len(ours) == len(reference) == len(LAYERS)
    for a, b in zip(ours, reference):
        assert torch.equal(a, b)
    assert [f.shape[1:] for f in ours] == [(3, 38, 22), (8, 16, 8), (16, 8, 4), (16, 8, 4), (16, 8, 4)]
    assert generator.encoder_layers == 12 and generator.encoder_channels(LAYERS) == [3, 8, 16, 16, 16]
    # CUT's 0,4,8,12,16 (antialiased stages of 4 layers) are our 0,4,7,10,14: the padded input, the two downsampling
    # convs, the first and the fifth residual block
    reference_size = ResnetGenerator(3, 3, ngf=4, n_blocks=9)
    kinds = [type(reference_size.model[i]).__name__ for i in CUT_NCE_LAYERS]
    assert kinds == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"]
    assert [reference_size.model[i].stride for i in (4, 7)] == [(2, 2), (2, 2)]
    assert reference_size.model[14] is reference_size.model[10 + 4]
    for bad in ([], [4, 0], [0, 12], [-1]):
        with pytest.raises(ValueError, match="layers"):
            generator.encode(image, bad)


def test_projection_heads_are_cuts_mlp_sample():
    torch.manual_seed(0)
    heads = PatchSampleMLP([3, 64], units=256)
    keys = [f"mlp_{i}.{j}.{p}" for i in (0, 1) for j in (0, 2) for p in ("bias", "weight")]
    assert sorted(heads.state_dict()) == keys
    assert isinstance(heads.mlp_1[1], nn.ReLU) and heads.mlp_1[0].in_features == 64
    assert all(float(p.detach().abs().max()) == 0 for n, p in heads.named_parameters() if n.endswith("bias"))
    # xavier normal with gain 0.02 (CUT's default --init_type xavier --init_gain 0.02)
    std = heads.mlp_1[2].weight.std().item()
    assert std == pytest.approx(0.02 * math.sqrt(2 / (256 + 256)), rel=0.05)
    features = [torch.randn(2, 3, 6, 4), torch.randn(2, 64, 3, 2)]
    ids = [torch.tensor([0, 5, 23]), torch.tensor([1, 4])]
    projected = heads(features, ids)
    assert [p.shape for p in projected] == [(2, 3, 256), (2, 2, 256)]
    # unit rows, up to CUT's eps 1e-7 against the small norms of freshly initialised heads
    torch.testing.assert_close(projected[0].norm(dim=-1), torch.ones(2, 3), rtol=0, atol=2e-3)
    # row (b, j) is the head of location ids[j] of image b, row-major over H x W (location 5 = row 1, column 1)
    torch.testing.assert_close(projected[0][1, 1], l2_normalise(heads.mlp_0(features[0][1, :, 1, 1])))
    with pytest.raises(ValueError, match="features"):
        heads([features[1], features[0]], ids)
