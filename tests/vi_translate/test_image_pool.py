from __future__ import annotations

import pytest
import torch

from vi_translate.image_pool import ImagePool


def batch(start: int, size: int = 4) -> torch.Tensor:
    """[size, 1, 2, 2] images whose pixels all equal their index start, start + 1, ..."""
    return torch.arange(start, start + size, dtype=torch.float32).view(size, 1, 1, 1).expand(size, 1, 2, 2).clone()


def ids(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0]]


def seeded_pool(pool_size: int = 50, seed: int = 0) -> ImagePool:
    return ImagePool(pool_size, generator=torch.Generator().manual_seed(seed))


def test_images_are_stored_and_returned_until_the_pool_is_full():
    pool = seeded_pool(pool_size=6)
    assert ids(pool.query(batch(0))) == [0, 1, 2, 3]
    assert len(pool) == 4
    out = pool.query(batch(4))  # 4, 5 fill the pool; 6, 7 go through the 0.5 draw
    assert ids(out)[:2] == [4, 5] and len(pool) == 6
    assert ids(out)[2] in (6, *range(6)) and ids(out)[3] in (7, *range(7))


def test_returned_images_are_detached_with_shape_and_dtype_kept():
    pool = seeded_pool(pool_size=2)
    fake = batch(0).requires_grad_(True)
    for _ in range(3):
        out = pool.query(fake * 1.0)
        assert out.shape == fake.shape and out.dtype == fake.dtype and not out.requires_grad
    assert all(not image.requires_grad for image in pool.images)


def test_full_pool_swaps_with_probability_one_half():
    pool = seeded_pool(pool_size=10)
    pool.query(batch(0, size=10))
    swapped = total = 0
    for step in range(200):
        new = batch(1000 + step * 10, size=10)
        out = pool.query(new)
        swapped += sum(a != b for a, b in zip(ids(out), ids(new)))
        total += 10
        assert set(ids(out)) <= set(range(0, 1000 + step * 10 + 10))
    # 2,000 draws: the swap frequency has standard deviation ~0.011
    assert 0.45 < swapped / total < 0.55
    assert len(pool) == 10


def test_pool_size_zero_returns_the_input_unchanged():
    pool = ImagePool(0)
    images = torch.randn(3, 3, 4, 4, requires_grad=True)
    assert pool.query(images) is images and len(pool) == 0


def test_a_fixed_generator_seed_gives_identical_queries():
    first, second = seeded_pool(5, seed=3), seeded_pool(5, seed=3)
    for step in range(20):
        assert torch.equal(first.query(batch(step * 4)), second.query(batch(step * 4)))


def test_default_generator_follows_the_global_seed():
    torch.manual_seed(1)
    first = ImagePool(3)
    torch.manual_seed(1)
    second = ImagePool(3)
    for step in range(10):
        assert torch.equal(first.query(batch(step * 4)), second.query(batch(step * 4)))


def test_state_round_trip_through_weights_only_load_continues_identically(tmp_path):
    original = seeded_pool(pool_size=6, seed=7)
    for step in range(5):
        original.query(batch(step * 4))
    state = original.state_dict()
    assert set(state) == {"images", "generator", "pool_size"}
    assert isinstance(state["pool_size"], int) and isinstance(state["images"], list)
    assert all(isinstance(image, torch.Tensor) and image.device.type == "cpu" for image in state["images"])
    assert state["generator"].dtype == torch.uint8
    torch.save(state, tmp_path / "pool.pt")
    restored = seeded_pool(pool_size=6, seed=123)
    restored.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=True))
    for step in range(5, 15):
        assert torch.equal(restored.query(batch(step * 4)), original.query(batch(step * 4)))


def test_state_dict_is_a_snapshot():
    pool = seeded_pool(pool_size=2)
    pool.query(batch(0, size=2))
    state = pool.state_dict()
    pool.query(batch(10, size=2))
    pool.images[0].add_(100)
    assert ids(torch.stack(state["images"])) == [0, 1]


def test_load_state_dict_errors():
    state = seeded_pool(pool_size=4).state_dict()
    with pytest.raises(ValueError, match="pool_size"):
        seeded_pool(pool_size=5).load_state_dict(state)
    with pytest.raises(ValueError, match="generator"):
        seeded_pool(pool_size=4).load_state_dict({"images": [], "pool_size": 4})
    with pytest.raises(ValueError, match="images"):
        seeded_pool(pool_size=1).load_state_dict(dict(state, pool_size=1, images=[torch.zeros(1)] * 2))


def test_argument_errors():
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(-1)
    with pytest.raises(ValueError, match="images"):
        ImagePool(2).query(torch.zeros(3, 4, 4))


@pytest.mark.gpu
def test_restored_pool_hands_back_images_on_the_query_device():
    pool = seeded_pool(pool_size=2)
    pool.query(batch(0, size=2).cuda())
    state = pool.state_dict()
    restored = seeded_pool(pool_size=2)
    restored.load_state_dict(state)
    for step in range(10):
        out = restored.query(batch(10 + step * 2, size=2).cuda().half())
        assert out.device.type == "cuda" and out.dtype == torch.float16
