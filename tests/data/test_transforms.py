"""Training augmentations: CPU pipeline, CAJ channel operations, batched gpu_augment (run on CPU tensors)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reid.data.transforms import (IMAGENET_MEAN, IMAGENET_STD, ChannelAdapGray, ChannelExchange, ChannelRandomErasing,
                                  build_test_transform, build_train_transform, channel_augmentation, gpu_augment)

H, W = 32, 16


def random_image(seed: int = 0, size=(20, 40)) -> Image.Image:
    """A random RGB PIL image (width, height) = size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def ramp_image() -> Image.Image:
    """A left-dark / right-bright image whose horizontal flips are easy to detect (already H x W)."""
    row = np.linspace(0, 255, W).astype(np.uint8)
    pixels = np.broadcast_to(row[None, :, None], (H, W, 3)).copy()
    return Image.fromarray(pixels)


def hand_tensor() -> torch.Tensor:
    """[3, 2, 2] with distinct channel values."""
    return torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 2.0), torch.full((2, 2), 4.0)])


def black_normalised() -> torch.Tensor:
    return -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)


# ---------------------------------------------------------------- CPU pipeline


@pytest.mark.parametrize("modality,channel", [("vis", False), ("vis", True), ("ir", True)])
def test_train_transform_shape_dtype(modality, channel):
    out = build_train_transform(H, W, channel_augment=channel, modality=modality)(random_image())
    assert out.shape == (3, H, W) and out.dtype == torch.float32


def test_train_transform_deterministic_under_manual_seed():
    transform = build_train_transform(H, W, channel_augment=True)
    img = random_image()
    torch.manual_seed(3)
    first = [transform(img) for _ in range(5)]
    torch.manual_seed(3)
    second = [transform(img) for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(first[0], x) for x in first[1:])


def test_train_transform_without_randomness_equals_test_transform():
    img = random_image(size=(W, H))
    plain = build_train_transform(H, W, pad=0, flip=False, erasing=0.0)(img)
    assert torch.allclose(plain, build_test_transform(H, W)(img))


def test_gpu_mode_only_resizes_and_normalises():
    img = random_image()
    gpu = build_train_transform(H, W, erasing=1.0, channel_augment=True, gpu=True)
    assert torch.equal(gpu(img), build_test_transform(H, W)(img))


def test_flip_happens_about_half_the_time():
    transform = build_train_transform(H, W, pad=0, erasing=0.0)
    img = ramp_image()
    torch.manual_seed(0)
    outs = [transform(img) for _ in range(400)]
    flipped = sum(bool(o[0, 0, 0] > o[0, 0, -1]) for o in outs)
    assert 150 < flipped < 250


def test_pad_crop_keeps_size_and_shifts_content():
    transform = build_train_transform(H, W, pad=4, flip=False, erasing=0.0)
    img = random_image(size=(W, H))
    reference = build_test_transform(H, W)(img)
    torch.manual_seed(0)
    outs = [transform(img) for _ in range(30)]
    assert all(o.shape == (3, H, W) for o in outs)
    assert any(not torch.allclose(o, reference) for o in outs)
    black = black_normalised().view(3, 1)
    # any padding visible in a crop is black (per-channel normalised zero)
    for o in outs:
        border = o[:, 0, :]
        if torch.allclose(border, black.expand_as(border), atol=1e-5):
            break
    else:
        pytest.fail("no crop showed the black padding on its top row")


def test_erasing_changes_a_region_filled_with_channel_means():
    transform = build_train_transform(H, W, pad=0, flip=False, erasing=1.0)
    img = random_image(size=(W, H))
    reference = build_test_transform(H, W)(img)
    torch.manual_seed(1)
    out = transform(img)
    changed = (out != reference).any(0)
    assert changed.any()
    fill = torch.tensor(IMAGENET_MEAN).view(3, 1)
    assert torch.allclose(out[:, changed], fill.expand(3, int(changed.sum())))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="modality"):
        build_train_transform(H, W, modality="rgb")
    with pytest.raises(ValueError, match="erasing"):
        build_train_transform(H, W, erasing=1.5)
    with pytest.raises(ValueError, match="pad"):
        build_train_transform(H, W, pad=-1)
    with pytest.raises(ValueError, match="size"):
        build_train_transform(0, W)


# ---------------------------------------------------------------- CAJ channel operations


@pytest.mark.parametrize("idx", [0, 1, 2])
def test_channel_exchange_copies_the_chosen_channel(idx):
    img = hand_tensor()
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(60):
        out = ChannelExchange(gray=2, generator=g)(img)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        seen.add(float(out[0, 0, 0]))
    assert float(img[idx, 0, 0]) in seen
    assert seen == {1.0, 2.0, 4.0}  # gray=2: R, G or B, never grey
    assert torch.equal(img, hand_tensor())  # input untouched


def test_channel_exchange_gray_index_gives_grey():
    out_values = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        out_values.add(round(float(ChannelExchange(gray=3, generator=g)(hand_tensor())[0, 0, 0]), 6))
    assert round(0.2989 * 1 + 0.587 * 2 + 0.114 * 4, 6) in out_values


def test_channel_adap_gray_exact_grey_weights():
    img = hand_tensor()
    grey = 0.2989 * 1.0 + 0.5870 * 2.0 + 0.1140 * 4.0
    always_grey = ChannelAdapGray(probability=1.0, generator=torch.Generator().manual_seed(0))
    outcomes = {}
    for _ in range(200):
        out = always_grey(img)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        value = float(out[0, 0, 0])
        outcomes[value] = outcomes.get(value, 0) + 1
    grey_values = [v for v in outcomes if v not in (1.0, 2.0, 4.0)]
    assert len(grey_values) == 1 and grey_values[0] == pytest.approx(grey, abs=1e-6)
    assert set(outcomes) == {1.0, 2.0, 4.0, grey_values[0]}  # 1/4 each with probability=1


def test_channel_adap_gray_keeps_image_when_grey_is_rejected():
    img = hand_tensor()
    never_grey = ChannelAdapGray(probability=0.0, generator=torch.Generator().manual_seed(0))
    outs = [never_grey(img) for _ in range(100)]
    assert any(torch.equal(o, img) for o in outs)
    assert all(float(o[0, 0, 0]) in (1.0, 2.0, 4.0) for o in outs)


def test_channel_random_erasing_fills_channel_means():
    img = torch.full((3, 40, 20), 9.0)
    eraser = ChannelRandomErasing(probability=1.0, generator=torch.Generator().manual_seed(0))
    out = eraser(img)
    erased = (out != 9.0).any(0)
    assert erased.any()
    rows, cols = erased.nonzero(as_tuple=True)
    assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle
    for c, mean in enumerate(IMAGENET_MEAN):
        assert torch.allclose(out[c][erased], torch.tensor(mean))
    assert torch.equal(ChannelRandomErasing(probability=0.0)(img), img)


def test_channel_ops_deterministic_with_generator_and_global_seed():
    img = torch.rand(3, 24, 12)
    a = ChannelRandomErasing(1.0, generator=torch.Generator().manual_seed(5))(img)
    b = ChannelRandomErasing(1.0, generator=torch.Generator().manual_seed(5))(img)
    assert torch.equal(a, b)
    torch.manual_seed(2)
    c = [ChannelAdapGray()(img) for _ in range(6)]
    torch.manual_seed(2)
    d = [ChannelAdapGray()(img) for _ in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(c, d))


def test_channel_ops_reject_bad_input():
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        ChannelExchange()(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="probability"):
        ChannelAdapGray(probability=2.0)
    with pytest.raises(ValueError, match="modality"):
        channel_augmentation("thermal")
    assert isinstance(channel_augmentation("vis"), ChannelExchange)
    assert isinstance(channel_augmentation("ir"), ChannelAdapGray)


# ---------------------------------------------------------------- batched augmentation


def test_gpu_augment_shapes_on_cpu():
    images = torch.randn(6, 3, H, W)
    out = gpu_augment(images, pad=4, flip=True, erasing=0.5, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert not torch.equal(out, images)
    assert torch.equal(gpu_augment(images, pad=0, flip=False, erasing=0.0), images)


def test_gpu_augment_deterministic_with_generator_and_global_seed():
    images = torch.randn(4, 3, H, W)
    is_ir = torch.tensor([False, False, True, True])
    kwargs = dict(pad=3, flip=True, erasing=0.5, channel_augment=True, is_ir=is_ir)
    a = gpu_augment(images, generator=torch.Generator().manual_seed(1), **kwargs)
    b = gpu_augment(images, generator=torch.Generator().manual_seed(1), **kwargs)
    assert torch.equal(a, b)
    torch.manual_seed(4)
    c = gpu_augment(images, **kwargs)
    torch.manual_seed(4)
    assert torch.equal(c, gpu_augment(images, **kwargs))


def test_gpu_augment_crop_is_a_shifted_window_of_black_padding():
    images = torch.randn(16, 3, H, W)
    out = gpu_augment(images, pad=2, flip=False, erasing=0.0, generator=torch.Generator().manual_seed(0))
    black = black_normalised().view(1, 3, 1, 1)
    padded = black.expand(16, 3, H + 4, W + 4).clone()
    padded[:, :, 2:2 + H, 2:2 + W] = images
    for i in range(16):
        windows = [padded[i, :, y:y + H, x:x + W] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], win) for win in windows)


def test_gpu_augment_flips_about_half():
    images = torch.arange(W, dtype=torch.float32).expand(400, 3, H, W).contiguous()
    out = gpu_augment(images, pad=0, flip=True, erasing=0.0, generator=torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] > out[:, 0, 0, -1]).sum().item()
    assert torch.equal(out[out[:, 0, 0, 0] > 0], images[:1].flip(3).expand(flipped, 3, H, W))
    assert 150 < flipped < 250


def test_gpu_augment_erasing_fills_one_rectangle_with_channel_means():
    images = torch.full((50, 3, H, W), 9.0)
    out = gpu_augment(images, pad=0, flip=False, erasing=1.0, generator=torch.Generator().manual_seed(0))
    fill = torch.tensor(IMAGENET_MEAN)
    for i in range(50):
        erased = (out[i] != 9.0).any(0)
        assert erased.any()
        rows, cols = erased.nonzero(as_tuple=True)
        assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert torch.allclose(out[i][:, erased], fill.view(3, 1).expand(3, int(erased.sum())))
    half = gpu_augment(images, pad=0, flip=False, erasing=0.5, generator=torch.Generator().manual_seed(0))
    assert 10 < int((half != 9.0).flatten(1).any(1).sum()) < 40


def test_gpu_augment_channel_ops_per_modality():
    images = hand_tensor().expand(200, 3, 2, 2).contiguous()
    is_ir = torch.arange(200) >= 100
    out = gpu_augment(images, pad=0, flip=False, erasing=0.0, channel_augment=True, is_ir=is_ir,
                      generator=torch.Generator().manual_seed(0))
    grey = 0.2989 * 1.0 + 0.5870 * 2.0 + 0.1140 * 4.0
    vis_values = {float(v) for v in out[:100, :, 0, 0].unique()}
    assert vis_values == {1.0, 2.0, 4.0} and (out[:100] == out[:100, :1]).all()
    ir = out[100:]
    identity = (ir == images[100:]).flatten(1).all(1)
    single = (ir == ir[:, :1]).flatten(1).all(1)
    assert identity.any() and (identity | single).all()
    single_values = ir[single][:, 0, 0, 0]
    is_grey = (single_values - grey).abs() < 1e-5
    assert is_grey.any()
    assert set(single_values[~is_grey].tolist()) == {1.0, 2.0, 4.0}


def test_gpu_augment_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        gpu_augment(torch.zeros(3, H, W))
    with pytest.raises(ValueError, match="float"):
        gpu_augment(torch.zeros(1, 3, H, W, dtype=torch.uint8))
    with pytest.raises(ValueError, match="is_ir"):
        gpu_augment(torch.zeros(2, 3, H, W), channel_augment=True)


@pytest.mark.gpu
def test_gpu_augment_on_cuda_matches_cpu_with_same_generator():
    images = torch.randn(8, 3, H, W)
    kwargs = dict(pad=3, flip=True, erasing=0.5, channel_augment=True, is_ir=torch.arange(8) >= 4)
    cpu = gpu_augment(images, generator=torch.Generator().manual_seed(0), **kwargs)
    cuda = gpu_augment(images.cuda(), generator=torch.Generator().manual_seed(0), **kwargs)
    assert cuda.is_cuda and torch.allclose(cuda.cpu(), cpu, atol=1e-6)
