"""Random streams: every image is a pure function of (seed, pid, camera, index), since
`np.random.default_rng` is seeded with that tuple plus a tag, so output does not depend on generation
order. Also the per-camera image counts and the train / val / test id split."""
from __future__ import annotations

import math

import numpy as np

# Tags appended to every seed tuple: they keep the streams of identities, views, counts and splits
# apart (numpy's SeedSequence treats [a, b] and [a, b, 0] alike, so tuple length alone is not enough).
_TAG_IDENTITY, _TAG_VIEW, _TAG_COUNT, _TAG_SPLIT, _TAG_FIXED_PATTERN = 11, 12, 13, 14, 15


def identity_rng(seed: int, pid: int) -> np.random.Generator:
    """The generator of identity `pid`'s attributes."""
    return np.random.default_rng([seed, pid, _TAG_IDENTITY])


def view_rng(seed: int, pid: int, camid: int, index: int) -> np.random.Generator:
    """The generator of image `index` (1-based) of identity `pid` in camera `camid`."""
    return np.random.default_rng([seed, pid, camid, index, _TAG_VIEW])


def image_count(seed: int, pid: int, camid: int, images_per_camera: int) -> int:
    """How many images identity `pid` has in camera `camid`: images_per_camera - 1 .. + 1, at least 1."""
    jitter = int(np.random.default_rng([seed, pid, camid, _TAG_COUNT]).integers(-1, 2))
    return max(1, images_per_camera + jitter)


def split_ids(num_ids: int, seed: int, test_fraction: float, val_fraction: float) -> dict[str, list[int]]:
    """Ids 1..num_ids split into sorted train / val / test lists; train and test never empty.

    val is non-empty whenever val_fraction > 0 and at least two ids remain beside the test ids.
    """
    order = [int(pid) for pid in np.random.default_rng([seed, _TAG_SPLIT]).permutation(np.arange(1, num_ids + 1))]
    n_test = min(max(1, int(math.floor(test_fraction * num_ids + 0.5))), num_ids - 1)
    n_val = min(int(math.floor(val_fraction * num_ids + 0.5)), num_ids - n_test - 1)
    if val_fraction > 0 and n_val == 0 and num_ids - n_test >= 2:
        n_val = 1
    return {"train": sorted(order[n_test + n_val:]), "val": sorted(order[n_test:n_test + n_val]),
            "test": sorted(order[:n_test])}
