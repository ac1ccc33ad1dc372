from __future__ import annotations

import pytest
import torch
from torch import nn

from vi_translate.networks import PatchDiscriminator, ResnetGenerator, count_parameters, init_weights


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Parameter counts of the reference CycleGAN networks (3 channels in and out, ngf = ndf = 64, instance norm,
# so every conv has a bias and the norms have no parameters):
#   generator outside the blocks: c7s1-64 3*64*49 + 64 = 9,472; down 64*128*9 + 128 = 73,856;
#   down 128*256*9 + 256 = 295,168; up (transposed) 256*128*9 + 128 = 295,040; up 128*64*9 + 64 = 73,792;
#   c7s1-3 64*3*49 + 3 = 9,411 -> 756,739. One residual block: 2 * (256*256*9 + 256) = 1,180,160.
GENERATOR_9_BLOCKS = 756_739 + 9 * 1_180_160  # = 11,378,179
GENERATOR_6_BLOCKS = 756_739 + 6 * 1_180_160  # = 7,837,699
#   PatchGAN, 4x4 convs: 3*64*16 + 64 = 3,136; 64*128*16 + 128 = 131,200; 128*256*16 + 256 = 524,544;
#   256*512*16 + 512 = 2,097,664; 512*1*16 + 1 = 8,193.
DISCRIMINATOR_3_LAYERS = 3_136 + 131_200 + 524_544 + 2_097_664 + 8_193  # = 2,764,737


def small_generator(in_channels: int = 3, out_channels: int = 3) -> ResnetGenerator:
    return ResnetGenerator(in_channels, out_channels, ngf=8, n_blocks=2)


def test_parameter_counts_equal_the_reference():
    assert GENERATOR_9_BLOCKS == 11_378_179 and GENERATOR_6_BLOCKS == 7_837_699
    assert DISCRIMINATOR_3_LAYERS == 2_764_737
    assert count_parameters(ResnetGenerator(3, 3)) == GENERATOR_9_BLOCKS
    assert count_parameters(ResnetGenerator(3, 3, ngf=64, n_blocks=6)) == GENERATOR_6_BLOCKS
    assert count_parameters(PatchDiscriminator(3)) == DISCRIMINATOR_3_LAYERS


def test_count_parameters_trainable_only():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # 15 + 8
    model[0].requires_grad_(False)
    assert count_parameters(model) == 23
    assert count_parameters(model, trainable_only=True) == 8


def test_state_dict_keys_follow_the_reference_layout():
    """Same module layout as the reference, so reference CycleGAN checkpoints load by key."""
    generator_keys = set(ResnetGenerator(3, 3).state_dict())
    expected = {"model.1.weight", "model.1.bias", "model.4.weight", "model.7.weight",
                "model.19.weight", "model.22.weight", "model.26.weight", "model.26.bias"}
    expected |= {f"model.{i}.conv_block.{j}.{p}" for i in range(10, 19) for j in (1, 5) for p in ("weight", "bias")}
    assert generator_keys == expected | {k.replace("weight", "bias") for k in expected}
    discriminator_keys = set(PatchDiscriminator(3).state_dict())
    assert discriminator_keys == {f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")}


def test_generator_layers_are_the_reference_layers():
    layers = list(ResnetGenerator(3, 1, ngf=64, n_blocks=1).model)
    assert [type(m).__name__ for m in layers] == [
        "ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ReLU",
        "Conv2d", "InstanceNorm2d", "ReLU", "Conv2d", "InstanceNorm2d", "ReLU",
        "ResnetBlock",
        "ConvTranspose2d", "InstanceNorm2d", "ReLU", "ConvTranspose2d", "InstanceNorm2d", "ReLU",
        "ReflectionPad2d", "Conv2d", "Tanh"]
    assert layers[1].kernel_size == (7, 7) and layers[1].padding == (0, 0) and layers[0].padding == (3, 3, 3, 3)
    assert [(layers[i].in_channels, layers[i].out_channels, layers[i].stride, layers[i].padding)
            for i in (4, 7)] == [(64, 128, (2, 2), (1, 1)), (128, 256, (2, 2), (1, 1))]
    assert [(layers[i].in_channels, layers[i].out_channels, layers[i].output_padding) for i in (11, 14)] == [
        (256, 128, (1, 1)), (128, 64, (1, 1))]
    assert (layers[18].in_channels, layers[18].out_channels) == (64, 1)
    block = [type(m).__name__ for m in layers[10].conv_block]
    assert block == ["ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ReLU",
                     "ReflectionPad2d", "Conv2d", "InstanceNorm2d"]
    for norm in (m for m in layers if isinstance(m, nn.InstanceNorm2d)):
        assert not norm.affine and not norm.track_running_stats


def test_discriminator_layers_are_the_reference_layers():
    layers = list(PatchDiscriminator(3).model)
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding) for m in layers
             if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 64, (4, 4), (2, 2), (1, 1)), (64, 128, (4, 4), (2, 2), (1, 1)),
                     (128, 256, (4, 4), (2, 2), (1, 1)), (256, 512, (4, 4), (1, 1), (1, 1)),
                     (512, 1, (4, 4), (1, 1), (1, 1))]
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in layers) == 3
    assert all(m.negative_slope == 0.2 for m in layers if isinstance(m, nn.LeakyReLU))
    # ndf * min(2**n, 8): channels stop growing at 8 * ndf
    deep = [m.out_channels for m in PatchDiscriminator(1, ndf=4, n_layers=5).model if isinstance(m, nn.Conv2d)]
    assert deep == [4, 8, 16, 32, 32, 32, 1]


@pytest.mark.parametrize("in_channels, out_channels", [(3, 3), (1, 3), (3, 1)])
def test_generator_keeps_the_image_size(in_channels, out_channels):
    generator = small_generator(in_channels, out_channels)
    with torch.no_grad():
        out = generator(torch.randn(2, in_channels, 256, 128))
    assert out.shape == (2, out_channels, 256, 128)
    assert out.abs().max() <= 1.0  # tanh range


def test_full_generator_at_64x32_in_tanh_range():
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 1)
    with torch.no_grad():
        out = generator(torch.randn(1, 3, 64, 32) * 3)
    assert out.shape == (1, 1, 64, 32)
    assert out.abs().max() <= 1.0 and out.std() > 0


def test_generator_without_blocks_and_other_padding_types():
    x = torch.randn(1, 3, 16, 12)
    for padding_type in ("reflect", "replicate", "zero"):
        assert ResnetGenerator(3, 3, ngf=4, n_blocks=1, padding_type=padding_type)(x).shape == x.shape
    assert ResnetGenerator(3, 3, ngf=4, n_blocks=0)(x).shape == x.shape


def test_generator_rejects_sizes_not_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        small_generator()(torch.randn(1, 3, 30, 32))


@pytest.mark.parametrize("kwargs, name", [
    (dict(in_channels=0, out_channels=3), "in_channels"), (dict(in_channels=3, out_channels=0), "out_channels"),
    (dict(in_channels=3, out_channels=3, ngf=0), "ngf"), (dict(in_channels=3, out_channels=3, n_blocks=-1), "n_blocks"),
    (dict(in_channels=3, out_channels=3, padding_type="circular"), "padding_type"),
])
def test_generator_argument_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ResnetGenerator(**kwargs)


def test_discriminator_argument_errors_name_the_argument():
    for kwargs, name in ((dict(in_channels=0), "in_channels"), (dict(in_channels=3, ndf=0), "ndf"),
                         (dict(in_channels=3, n_layers=0), "n_layers")):
        with pytest.raises(ValueError, match=name):
            PatchDiscriminator(**kwargs)


def test_discriminator_patch_map_shape():
    # k4 s2 p1 halves (256 -> 128 -> 64 -> 32), then two k4 s1 p1 convs take 1 each (31, 30):
    # 256x256 -> 30x30 (the 70x70 PatchGAN), 256x128 -> 30x14.
    discriminator = PatchDiscriminator(3)
    with torch.no_grad():
        assert discriminator(torch.randn(2, 3, 256, 128)).shape == (2, 1, 30, 14)
        assert PatchDiscriminator(1, ndf=8)(torch.randn(1, 1, 256, 256)).shape == (1, 1, 30, 30)


def test_constructors_initialise_normal_with_gain_0_02():
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 3)
    block_conv = generator.model[10].conv_block[1]  # 256*256*9 = 589,824 weights
    assert abs(block_conv.weight.std().item() - 0.02) < 0.0005 and abs(block_conv.weight.mean().item()) < 0.0005
    for module in generator.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            assert torch.count_nonzero(module.bias) == 0
    discriminator_conv = PatchDiscriminator(3).model[8]  # 256*512*16 weights
    assert abs(discriminator_conv.weight.std().item() - 0.02) < 0.0005
    wide = PatchDiscriminator(3, init_gain=0.1).model[8]
    assert abs(wide.weight.std().item() - 0.1) < 0.002


def test_init_weights_batchnorm_and_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(20_000), nn.Linear(300, 300))
    assert init_weights(model, gain=0.05) is model
    assert abs(model[1].weight.mean().item() - 1.0) < 0.002 and abs(model[1].weight.std().item() - 0.05) < 0.002
    assert torch.count_nonzero(model[1].bias) == 0 and torch.count_nonzero(model[2].bias) == 0
    assert abs(model[2].weight.std().item() - 0.05) < 0.002
    assert abs(model[0].weight.std().item() - 0.05) < 0.002
    with pytest.raises(ValueError, match="gain"):
        init_weights(model, gain=0.0)


def test_networks_accept_channels_last_inputs():
    torch.manual_seed(0)
    generator, discriminator = small_generator(), PatchDiscriminator(3, ndf=8)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        reference_out, reference_patch = generator(x), discriminator(x)
        generator, discriminator = generator.to(memory_format=torch.channels_last), discriminator.to(
            memory_format=torch.channels_last)
        x_last = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(generator(x_last), reference_out, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(discriminator(x_last), reference_patch, atol=1e-5, rtol=1e-4)


def test_networks_run_and_backpropagate_under_autocast():
    torch.manual_seed(0)
    generator, discriminator = small_generator(), PatchDiscriminator(3, ndf=8)
    x = torch.randn(2, 3, 64, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = generator(x)
        patch = discriminator(fake)
    assert fake.shape == x.shape and patch.shape == (2, 1, 6, 2)
    assert torch.isfinite(fake).all() and torch.isfinite(patch).all()
    patch.float().mean().backward()
    assert generator.model[1].weight.grad is not None and torch.isfinite(generator.model[1].weight.grad).all()


@pytest.mark.gpu
def test_networks_on_cuda_channels_last_float16_autocast():
    generator, discriminator = small_generator().cuda(), PatchDiscriminator(3, ndf=8).cuda()
    generator, discriminator = (m.to(memory_format=torch.channels_last) for m in (generator, discriminator))
    x = torch.randn(2, 3, 64, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.float16):
        fake = generator(x)
        patch = discriminator(fake)
    assert fake.shape == x.shape and patch.shape == (2, 1, 6, 2)
    patch.float().mean().backward()
    assert torch.isfinite(generator.model[1].weight.grad).all()
