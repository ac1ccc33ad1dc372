"""Training augmentations: CPU pipeline, CAJ channel operations, batched colour jitter and gpu_augment (CPU tensors).

The reference values (fills 0.4914/0.4822/0.4465, grey weights 0.2989/0.587/0.114, outcome frequencies) are written
out here rather than imported, so a wrong constant in the module fails."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms.v2 import functional as F

from reid.data.transforms import (CHANNEL_OPS, IMAGENET_MEAN, IMAGENET_STD, ChannelAdapGray, ChannelExchange,
                                  ChannelRandomErasing, _color_jitter, _erase_boxes, _jitter_params,
                                  build_test_transform, build_train_transform, channel_operation, gpu_augment)

H, W = 32, 16
REFERENCE_FILL = (0.4914, 0.4822, 0.4465)  # the reference ChannelRandomErasing default mean
EXCHANGE_FREQUENCIES = (1 / 3, 1 / 3, 1 / 3)  # R, G, B copies
ADAPTIVE_GREY_FREQUENCIES = (1 / 4, 1 / 4, 1 / 4, 1 / 8, 1 / 8)  # R, G, B copies, grey, unchanged
TORCHVISION_JITTER = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)


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


def normalise(images01: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] in [0, 1] -> ImageNet-normalised."""
    return (images01 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def channel_outcomes(images: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] -> [..., 5, 3, H, W]: the reference channel-op outcomes R, G, B copies, grey, unchanged."""
    r, g, b = images.unbind(-3)
    grey = 0.2989 * r + 0.587 * g + 0.114 * b
    singles = [c.unsqueeze(-3).expand_as(images) for c in (r, g, b, grey)]
    return torch.stack(singles + [images], -4)


def outcome_of(outputs: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """outputs [N, 3, H, W], allowed [N, K, 3, H, W] -> [N] index of the one allowed image each output equals.

    Fails unless every output equals exactly one allowed image (to 1e-6: the grey sum may round differently)."""
    matches = torch.isclose(outputs.unsqueeze(1), allowed, rtol=0.0, atol=1e-6).flatten(2).all(2)
    assert (matches.sum(1) == 1).all(), "an output is not exactly one of the allowed outcomes"
    return matches.long().argmax(1)


def assert_frequencies(outcomes: torch.Tensor, expected: tuple[float, ...], tolerance: float = 0.03) -> None:
    counts = torch.bincount(outcomes, minlength=len(expected)).double() / len(outcomes)
    assert counts.tolist() == pytest.approx(list(expected), abs=tolerance)


def distinct_channels(n: int, seed: int = 0) -> torch.Tensor:
    """[n, 3, 4, 2] random images: channels, grey and the original are pairwise different."""
    return torch.rand(n, 3, 4, 2, generator=torch.Generator().manual_seed(seed))


def torchvision_jitter(image01: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """One float image [3, H, W] in [0, 1] through torchvision's v2 kernels, in ColorJitter's loop order."""
    for op in order.tolist():
        image01 = TORCHVISION_JITTER[op](image01, float(factors[op]))
    return image01


# ---------------------------------------------------------------- CPU pipeline


@pytest.mark.parametrize("channel_op", [None, *CHANNEL_OPS])
@pytest.mark.parametrize("color_jitter", [0.0, 0.5])
def test_train_transform_shape_dtype(channel_op, color_jitter):
    out = build_train_transform(H, W, channel_op=channel_op, color_jitter=color_jitter)(random_image())
    assert out.shape == (3, H, W) and out.dtype == torch.float32


def test_train_transform_deterministic_under_manual_seed():
    transform = build_train_transform(H, W, channel_op="exchange", color_jitter=0.5)
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
    gpu = build_train_transform(H, W, erasing=1.0, channel_op="exchange", color_jitter=0.5, gpu=True)
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


def test_erasing_fills_the_reference_means_into_the_normalised_image():
    transform = build_train_transform(H, W, pad=0, flip=False, erasing=1.0)
    img = Image.new("RGB", (W, H), (200, 200, 200))
    kept = normalise(torch.full((3, 1, 1), 200 / 255)).view(3)
    torch.manual_seed(1)
    for _ in range(5):
        out = transform(img)
        erased = (out != kept.view(3, 1, 1)).any(0)
        assert erased.any() and torch.allclose(out[:, ~erased], kept.view(3, 1), atol=1e-6)
        for c, fill in enumerate(REFERENCE_FILL):
            assert torch.equal(out[c][erased], torch.full((int(erased.sum()),), fill))


def step_types(transform) -> list[type]:
    return [type(step) for step in transform.transforms]


@pytest.mark.parametrize("channel_op,op_type", [(None, None), ("exchange", ChannelExchange),
                                                ("adaptive_grey", ChannelAdapGray)])
@pytest.mark.parametrize("color_jitter", [0.0, 0.5])
def test_train_transform_steps_in_reference_order(channel_op, op_type, color_jitter):
    transform = build_train_transform(H, W, channel_op=channel_op, color_jitter=color_jitter)
    jitter = [T.ColorJitter] if color_jitter else []
    op = [op_type] if op_type else []
    assert step_types(transform) == [T.Resize, T.Pad, T.RandomCrop, T.RandomHorizontalFlip, *jitter, T.ToTensor,
                                      T.Normalize, ChannelRandomErasing, *op]
    steps = transform.transforms
    assert steps[1].padding == 10 and steps[1].fill == 0 and steps[3].p == 0.5
    if color_jitter:
        cj = steps[4]
        assert (cj.brightness, cj.contrast, cj.saturation, cj.hue) == ((0.5, 1.5),) * 3 + ((-0.5, 0.5),)
    if channel_op == "exchange":
        assert steps[-1].gray == 2
    if channel_op == "adaptive_grey":
        assert steps[-1].probability == 0.5
    assert steps[-1 - len(op)].probability == 0.5 and steps[-1 - len(op)].mean == REFERENCE_FILL


@pytest.mark.parametrize("channel_op,frequencies", [("exchange", EXCHANGE_FREQUENCIES),
                                                    ("adaptive_grey", ADAPTIVE_GREY_FREQUENCIES)])
def test_train_transform_channel_op_acts_on_the_normalised_image(channel_op, frequencies):
    img = random_image(size=(8, 16))
    transform = build_train_transform(16, 8, pad=0, flip=False, erasing=0.0, channel_op=channel_op)
    allowed = channel_outcomes(build_test_transform(16, 8)(img))[:len(frequencies)]
    torch.manual_seed(0)
    outs = torch.stack([transform(img) for _ in range(1200)])
    assert_frequencies(outcome_of(outs, allowed.expand(len(outs), *allowed.shape)), frequencies, tolerance=0.05)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="channel_op.*'exchange', 'adaptive_grey'"):
        build_train_transform(H, W, channel_op="rgb")
    for bad in (-0.1, 0.6):
        with pytest.raises(ValueError, match="color_jitter"):
            build_train_transform(H, W, color_jitter=bad)
        with pytest.raises(ValueError, match="color_jitter"):
            build_train_transform(H, W, color_jitter=bad, gpu=True)
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


def test_channel_exchange_outcomes_and_frequencies():
    img = distinct_channels(1)[0]
    allowed = channel_outcomes(img)[:3].expand(3000, 3, 3, 4, 2)
    exchange = ChannelExchange(generator=torch.Generator().manual_seed(0))
    outs = torch.stack([exchange(img) for _ in range(3000)])
    assert_frequencies(outcome_of(outs, allowed), EXCHANGE_FREQUENCIES)


def test_channel_adap_gray_outcomes_and_frequencies():
    img = distinct_channels(1)[0]
    allowed = channel_outcomes(img).expand(4000, 5, 3, 4, 2)
    adaptive = ChannelAdapGray(probability=0.5, generator=torch.Generator().manual_seed(0))
    outs = torch.stack([adaptive(img) for _ in range(4000)])
    assert_frequencies(outcome_of(outs, allowed), ADAPTIVE_GREY_FREQUENCIES)


def test_channel_random_erasing_fills_channel_means():
    img = torch.full((3, 40, 20), 9.0)
    eraser = ChannelRandomErasing(probability=1.0, generator=torch.Generator().manual_seed(0))
    out = eraser(img)
    erased = (out != 9.0).any(0)
    assert erased.any()
    rows, cols = erased.nonzero(as_tuple=True)
    assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle
    for c, mean in enumerate(REFERENCE_FILL):
        assert torch.equal(out[c][erased], torch.full((int(erased.sum()),), mean))
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
    for bad in ("thermal", None):
        with pytest.raises(ValueError, match="'exchange', 'adaptive_grey'"):
            channel_operation(bad)
    assert CHANNEL_OPS == ("exchange", "adaptive_grey")
    exchange, adaptive = channel_operation("exchange"), channel_operation("adaptive_grey")
    assert isinstance(exchange, ChannelExchange) and exchange.gray == 2
    assert isinstance(adaptive, ChannelAdapGray) and adaptive.probability == 0.5


# ---------------------------------------------------------------- batched augmentation


def test_gpu_augment_shapes_on_cpu():
    images = torch.randn(6, 3, H, W)
    out = gpu_augment(images, pad=4, flip=True, erasing=0.5, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert not torch.equal(out, images)
    assert torch.equal(gpu_augment(images, pad=0, flip=False, erasing=0.0), images)


def test_gpu_augment_deterministic_with_generator_and_global_seed():
    images = torch.randn(4, 3, H, W)
    kwargs = dict(pad=3, flip=True, erasing=0.5, channel_op="adaptive_grey", color_jitter=0.5)
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


def test_gpu_augment_erasing_fills_one_rectangle_with_reference_means():
    images = torch.full((50, 3, H, W), 9.0)
    out = gpu_augment(images, pad=0, flip=False, erasing=1.0, generator=torch.Generator().manual_seed(0))
    fill = torch.tensor(REFERENCE_FILL)
    for i in range(50):
        erased = (out[i] != 9.0).any(0)
        assert erased.any()
        rows, cols = erased.nonzero(as_tuple=True)
        assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert torch.allclose(out[i][:, erased], fill.view(3, 1).expand(3, int(erased.sum())))
    half = gpu_augment(images, pad=0, flip=False, erasing=0.5, generator=torch.Generator().manual_seed(0))
    assert 10 < int((half != 9.0).flatten(1).any(1).sum()) < 40


@pytest.mark.parametrize("channel_op,frequencies", [("exchange", EXCHANGE_FREQUENCIES),
                                                    ("adaptive_grey", ADAPTIVE_GREY_FREQUENCIES)])
def test_gpu_augment_channel_op_outcomes_and_frequencies(channel_op, frequencies):
    images = distinct_channels(4000)
    out = gpu_augment(images, pad=0, flip=False, erasing=0.0, channel_op=channel_op,
                      generator=torch.Generator().manual_seed(0))
    allowed = channel_outcomes(images)[:, :len(frequencies)]
    assert_frequencies(outcome_of(out, allowed), frequencies)


def test_gpu_augment_erases_after_jitter_and_before_the_channel_op():
    images = normalise(torch.rand(60, 3, 16, 8, generator=torch.Generator().manual_seed(0)))
    out = gpu_augment(images, pad=0, flip=False, erasing=1.0, channel_op="exchange", color_jitter=0.5,
                      generator=torch.Generator().manual_seed(1))
    fills = torch.tensor(REFERENCE_FILL).view(3, 1, 1)
    for image in out:
        assert (image == image[:1]).all()  # the channel op came last: one channel copied to all three
        pixels_per_fill = (image[0] == fills).flatten(1).sum(1)  # exact fill values survive: no jitter after erasing
        assert (pixels_per_fill > 0).sum() == 1  # the box shows the fill of the one copied channel


def test_gpu_augment_jitter_is_the_batch_jitter_of_the_denormalised_images():
    images01 = torch.rand(12, 3, 16, 8, generator=torch.Generator().manual_seed(0))
    out = gpu_augment(normalise(images01), pad=0, flip=False, erasing=0.0, color_jitter=0.5,
                      generator=torch.Generator().manual_seed(3))
    # with pad=0, flip=False and no erasing the jitter draws are the generator's first ones
    factors, order = _jitter_params(12, 0.5, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert torch.allclose(out, normalise(_color_jitter(images01, factors, order)), atol=1e-5)
    assert not torch.allclose(out, normalise(images01), atol=1e-3)


def test_jitter_params_follow_torchvision_ranges_and_orders():
    factors, order = _jitter_params(4000, 0.5, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert factors.shape == (4000, 4) and order.shape == (4000, 4)
    assert (factors[:, :3] >= 0.5).all() and (factors[:, :3] <= 1.5).all()
    assert (factors[:, 3] >= -0.5).all() and (factors[:, 3] <= 0.5).all()
    assert factors.mean(0).tolist() == pytest.approx([1.0, 1.0, 1.0, 0.0], abs=0.03)
    assert torch.equal(order.sort(1).values, torch.arange(4).expand(4000, 4))  # permutations of the op ids
    assert_frequencies(order[:, 0], (0.25,) * 4)
    strong, _ = _jitter_params(1000, 0.5, torch.Generator().manual_seed(0), torch.device("cpu"))
    weak, _ = _jitter_params(1000, 0.2, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert (weak[:, :3] >= 0.8).all() and (weak[:, 3].abs() <= 0.2).all() and not torch.equal(strong, weak)


@pytest.mark.parametrize("op", range(4))
def test_batch_jitter_single_op_matches_torchvision(op):
    images = torch.rand(16, 3, 16, 8, generator=torch.Generator().manual_seed(op))
    images[0] = 0.5  # a flat grey image (h = s = 0)
    images[1, :, :, :4] = images[1, :1, :, :4]  # grey pixels beside coloured ones
    neutral = torch.tensor([1.0, 1.0, 1.0, 0.0])
    factors = neutral.repeat(16, 1)
    factors[:, op] = torch.linspace(-0.5, 0.5, 16) if op == 3 else torch.linspace(0.0, 2.0, 16)
    order = torch.roll(torch.arange(4), -op).expand(16, 4)  # op first, then the neutral ones
    out = _color_jitter(images, factors, order)
    for i in range(16):
        expected = TORCHVISION_JITTER[op](images[i], float(factors[i, op]))
        assert torch.allclose(out[i], expected, atol=1e-5), (op, i)


def test_batch_jitter_random_factors_and_orders_match_torchvision():
    images = torch.rand(32, 3, 16, 8, generator=torch.Generator().manual_seed(0))
    factors, order = _jitter_params(32, 0.5, torch.Generator().manual_seed(1), torch.device("cpu"))
    out = _color_jitter(images, factors, order)
    assert len({tuple(row) for row in order.tolist()}) > 10
    for i in range(32):
        assert torch.allclose(out[i], torchvision_jitter(images[i], factors[i], order[i]), atol=1e-5), i
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_batch_jitter_order_matters():
    images = torch.rand(2, 3, 16, 8, generator=torch.Generator().manual_seed(0))
    factors = torch.tensor([[1.5, 0.5, 1.5, 0.3]]).expand(2, 4)
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    out = _color_jitter(images[:1].expand(2, 3, 16, 8), factors, order)
    assert not torch.allclose(out[0], out[1], atol=1e-3)
    for i in range(2):
        assert torch.allclose(out[i], torchvision_jitter(images[0], factors[i], order[i]), atol=1e-5)


def test_gpu_augment_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        gpu_augment(torch.zeros(3, H, W))
    with pytest.raises(ValueError, match="float"):
        gpu_augment(torch.zeros(1, 3, H, W, dtype=torch.uint8))
    with pytest.raises(ValueError, match="channel_op.*'exchange', 'adaptive_grey'"):
        gpu_augment(torch.zeros(2, 3, H, W), channel_op="vis")
    for bad in (-0.1, 0.6):
        with pytest.raises(ValueError, match="color_jitter"):
            gpu_augment(torch.zeros(2, 3, H, W), color_jitter=bad)


@pytest.mark.gpu
def test_gpu_augment_on_cuda_matches_cpu_with_same_generator():
    images = torch.randn(8, 3, H, W)
    kwargs = dict(pad=3, flip=True, erasing=0.5, channel_op="adaptive_grey", color_jitter=0.5)
    cpu = gpu_augment(images, generator=torch.Generator().manual_seed(0), **kwargs)
    cuda = gpu_augment(images.cuda(), generator=torch.Generator().manual_seed(0), **kwargs)
    assert cuda.is_cuda and torch.allclose(cuda.cpu(), cpu, atol=1e-5)  # jitter: float rounding differs


def erased_boxes(masks: torch.Tensor) -> list[tuple[int, int]]:
    """(height, width) of the one rectangle each [H, W] bool mask holds (masks [N, H, W], none empty)."""
    boxes = []
    for mask in masks:
        rows, cols = torch.nonzero(mask.any(1)).squeeze(1), torch.nonzero(mask.any(0)).squeeze(1)
        height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert int(mask.sum()) == height * width  # one filled rectangle
        boxes.append((height, width))
    return boxes


def erasing_geometry(boxes: list[tuple[int, int]], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(area fractions, aspect ratios h / w) of the erased boxes of a size x size image."""
    return (torch.tensor([h * w / size ** 2 for h, w in boxes]), torch.tensor([h / w for h, w in boxes]))


# CAJ / Zhong et al.: area fraction U(0.02, 0.4), aspect ratio h / w U(0.3, 1 / 0.3), each side rounded (so the bounds
# get the rounding's slack); the draws must also spread over both ranges
AREA_BOUNDS, AREA_SPREAD = (0.0185, 0.405), (0.04, 0.3)
ASPECT_BOUNDS, ASPECT_SPREAD = (0.25, 4.0), (0.45, 2.2)


def test_erasing_rectangles_have_caj_s_area_and_aspect_on_the_cpu_path():
    size, generator = 128, torch.Generator().manual_seed(0)
    eraser = ChannelRandomErasing(probability=1.0, generator=generator)
    masks = torch.stack([(eraser(torch.zeros(3, size, size)) != 0).any(0) for _ in range(400)])
    fractions, aspects = erasing_geometry(erased_boxes(masks), size)
    assert AREA_BOUNDS[0] <= fractions.min() < AREA_SPREAD[0] and AREA_SPREAD[1] < fractions.max() <= AREA_BOUNDS[1]
    assert ASPECT_BOUNDS[0] <= aspects.min() < ASPECT_SPREAD[0] and ASPECT_SPREAD[1] < aspects.max() <= ASPECT_BOUNDS[1]


def test_erasing_rectangles_have_caj_s_area_and_aspect_on_the_batch_path():
    size = 128
    masks = _erase_boxes(400, size, size, 1.0, torch.Generator().manual_seed(0), torch.device("cpu"))
    fractions, aspects = erasing_geometry(erased_boxes(masks[:, 0]), size)
    assert AREA_BOUNDS[0] <= fractions.min() < AREA_SPREAD[0] and AREA_SPREAD[1] < fractions.max() <= AREA_BOUNDS[1]
    assert ASPECT_BOUNDS[0] <= aspects.min() < ASPECT_SPREAD[0] and ASPECT_SPREAD[1] < aspects.max() <= ASPECT_BOUNDS[1]
