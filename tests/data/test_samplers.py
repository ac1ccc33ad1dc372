"""CrossModalitySampler: batch layout, label pairing, replacement, outliers, determinism, ranks, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from reid.data.samplers import CrossModalitySampler


def make_data(spec: dict[int, tuple[int, int]]) -> tuple[list[int], list[str]]:
    """label -> (number of visible images, number of infrared images) => labels [N], modalities [N]."""
    labels, modalities = [], []
    for label, (n_vis, n_ir) in spec.items():
        labels += [label] * (n_vis + n_ir)
        modalities += ["vis"] * n_vis + ["ir"] * n_ir
    return labels, modalities


MIXED = {label: (6, 5) for label in range(8)}
SPEC = {**MIXED, 20: (7, 0), 21: (0, 7), -1: (10, 10)}  # two single-modality labels and outliers


def batches(sampler: CrossModalitySampler) -> list[list[int]]:
    return list(iter(sampler))


def test_batch_layout_and_sizes():
    labels, modalities = make_data(SPEC)
    sampler = CrossModalitySampler(labels, modalities, num_identities=4, num_instances=3, iterations=7)
    out = batches(sampler)
    assert len(sampler) == 7 and len(out) == 7 and sampler.batch_size == 24
    for batch in out:
        assert len(batch) == 24 and all(isinstance(i, int) for i in batch)
        assert all(modalities[i] == "vis" for i in batch[:12])
        assert all(modalities[i] == "ir" for i in batch[12:])
        vis_labels = [labels[i] for i in batch[:12]]
        assert vis_labels == [vis_labels[k * 3] for k in range(4) for _ in range(3)]  # K per label, label order


def test_shared_mode_pairs_labels_and_uses_only_mixed_ones():
    labels, modalities = make_data(SPEC)
    sampler = CrossModalitySampler(labels, modalities, num_identities=5, num_instances=4, iterations=30)
    half = 20
    for batch in batches(sampler):
        for i in range(half):
            assert labels[batch[i]] == labels[batch[i + half]]
        picked = {labels[i] for i in batch}
        assert picked <= set(MIXED) and len(picked) == 5  # without replacement: 5 distinct of 8
        for label in picked:  # K <= images of the label: no repeats
            vis = [i for i in batch[:half] if labels[i] == label]
            assert len(set(vis)) == len(vis) == 4


def test_with_replacement_when_too_few_labels_or_images():
    labels, modalities = make_data({0: (2, 1), 1: (1, 3)})
    sampler = CrossModalitySampler(labels, modalities, num_identities=3, num_instances=4, iterations=5)
    for batch in batches(sampler):
        assert len(batch) == 24
        assert {labels[i] for i in batch} <= {0, 1}
        for k in range(3):  # each label block repeats images of that label
            block = batch[k * 4:(k + 1) * 4]
            assert len({labels[i] for i in block}) == 1 and len(set(block)) < 4


def test_outliers_never_sampled():
    labels, modalities = make_data(SPEC)
    sampler = CrossModalitySampler(labels, modalities, num_identities=8, num_instances=6, iterations=20,
                                   shared_labels=False)
    seen = {i for batch in batches(sampler) for i in batch}
    assert all(labels[i] >= 0 for i in seen)


def test_deterministic_per_seed_and_epoch():
    labels, modalities = make_data(SPEC)
    a = CrossModalitySampler(labels, modalities, num_identities=3, num_instances=2, iterations=10, seed=7)
    b = CrossModalitySampler(labels, modalities, num_identities=3, num_instances=2, iterations=10, seed=7)
    assert batches(a) == batches(b) == batches(a)
    epoch0 = batches(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert batches(a) == batches(b) != epoch0
    a.set_epoch(0)
    assert batches(a) == epoch0
    other_seed = CrossModalitySampler(labels, modalities, num_identities=3, num_instances=2, iterations=10, seed=8)
    assert batches(other_seed) != epoch0


def test_ranks_get_different_streams():
    labels, modalities = make_data(SPEC)
    streams = [batches(CrossModalitySampler(labels, modalities, num_identities=3, num_instances=2, iterations=10,
                                            rank=rank, world_size=3)) for rank in range(3)]
    assert streams[0] != streams[1] != streams[2] != streams[0]
    single = CrossModalitySampler(labels, modalities, num_identities=3, num_instances=2, iterations=10)
    assert batches(single) == streams[0]


def test_separate_label_spaces_layout():
    spec = {0: (5, 0), 1: (5, 0), 2: (5, 0), 10: (0, 5), 11: (0, 5), 12: (0, 5), -1: (3, 3)}
    labels, modalities = make_data(spec)
    sampler = CrossModalitySampler(labels, modalities, num_identities=2, num_instances=3, iterations=15,
                                   shared_labels=False)
    for batch in batches(sampler):
        assert len(batch) == 12
        assert all(modalities[i] == "vis" and labels[i] in (0, 1, 2) for i in batch[:6])
        assert all(modalities[i] == "ir" and labels[i] in (10, 11, 12) for i in batch[6:])
        assert len({labels[i] for i in batch[:6]}) == 2 and len({labels[i] for i in batch[6:]}) == 2


def test_accepts_bool_modalities_and_tensors():
    labels, modalities = make_data(MIXED)
    is_ir = torch.tensor([m == "ir" for m in modalities])
    a = CrossModalitySampler(torch.tensor(labels), is_ir, num_identities=2, num_instances=2, iterations=4)
    b = CrossModalitySampler(np.array(labels), modalities, num_identities=2, num_instances=2, iterations=4)
    assert batches(a) == batches(b)


def test_works_as_dataloader_batch_sampler():
    class Indices(Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return i

    labels, modalities = make_data(MIXED)
    sampler = CrossModalitySampler(labels, modalities, num_identities=2, num_instances=2, iterations=3)
    loaded = [b.tolist() for b in DataLoader(Indices(), batch_sampler=sampler)]
    assert loaded == batches(sampler)


def test_error_when_no_label_spans_both_modalities():
    labels, modalities = make_data({0: (4, 0), 1: (0, 4), -1: (2, 2)})
    with pytest.raises(ValueError, match="shared_labels=False"):
        CrossModalitySampler(labels, modalities)
    CrossModalitySampler(labels, modalities, shared_labels=False)  # fine with separate label spaces


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_identities=0), "num_identities"),
    (dict(num_instances=0), "num_instances"),
    (dict(iterations=0), "iterations"),
    (dict(rank=2, world_size=2), "rank"),
    (dict(seed=-1), "seed"),
])
def test_invalid_arguments(kwargs, message):
    labels, modalities = make_data(MIXED)
    with pytest.raises(ValueError, match=message):
        CrossModalitySampler(labels, modalities, **kwargs)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="length"):
        CrossModalitySampler([0, 0], ["vis"])
    with pytest.raises(ValueError, match="'vis'/'ir'"):
        CrossModalitySampler([0, 0], ["vis", "thermal"])
    with pytest.raises(ValueError, match="integers"):
        CrossModalitySampler([0.5, 1.0], ["vis", "ir"])
    with pytest.raises(ValueError, match="infrared"):
        CrossModalitySampler([0, 1, -1], ["vis", "vis", "ir"], shared_labels=False)
    with pytest.raises(ValueError, match="both modalities"):
        CrossModalitySampler([-1, -1], ["vis", "ir"])
