"""CameraAwareSampler / camera_aware_pass: camera spread, replacement rule, reachability, a line-by-line
transcription of the reference sampler, independent streams, batching of passes, inputs and errors."""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from reid.data.samplers import CameraAwareSampler, camera_aware_pass, group_clusters

K = 4
# label -> cameras of its images (K = 4)
SPEC = {
    5: [0] * 3 + [1] * 5 + [2] * 4,  # several cameras, >= K other-camera images whatever the anchor
    1: [0, 1, 2, 3, 4, 5],           # one image per camera: 5 other-camera images
    2: [0] * 6,                      # single camera, 5 other images >= K: without replacement
    3: [1] * 3,                      # single camera, 2 other images < K: with replacement
    4: [0, 1, 1, 1],                 # anchor in camera 0: exactly K-1 other-camera images -> with replacement
    0: [2],                          # singleton: the anchor alone
    6: [0, 1],
    -1: [0, 1, 2] * 3,               # outliers
}


def make_data(spec: dict[int, list[int]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """label -> cameras => labels [N], cameras [N], images in a shuffled order (labels not first-seen sorted)."""
    labels = np.array([label for label, cams in spec.items() for _ in cams], dtype=np.int64)
    cameras = np.array([cam for cams in spec.values() for cam in cams], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    return labels[order], cameras[order]


LABELS, CAMERAS = make_data(SPEC)
USABLE = {label for label in SPEC if label >= 0}


def reference_pass(rng: np.random.Generator, data_source: list[tuple[str, int, int]], num_instances: int) -> list:
    """clustercontrast/utils/data/sampler.py RandomMultipleGallerySampler (__init__ + __iter__), line by line.

    Only the random sources are swapped for one numpy Generator: torch.randperm(n) -> rng.permutation(n),
    random.choice(seq) -> seq[rng.integers(len(seq))], np.random.choice -> rng.choice.
    """
    def No_index(a, b):  # noqa: N802 - the reference's name
        assert isinstance(a, list)
        return [i for i, j in enumerate(a) if j != b]

    index_pid = defaultdict(int)
    pid_cam = defaultdict(list)
    pid_index = defaultdict(list)
    for index, (_, pid, cam) in enumerate(data_source):
        if pid < 0:
            continue
        index_pid[index] = pid
        pid_cam[pid].append(cam)
        pid_index[pid].append(index)
    pids = list(pid_index.keys())

    indices = rng.permutation(len(pids)).tolist()
    ret = []
    for kid in indices:
        seq = pid_index[pids[kid]]
        i = seq[rng.integers(len(seq))]
        _, i_pid, i_cam = data_source[i]
        ret.append(i)
        pid_i = index_pid[i]
        cams = pid_cam[pid_i]
        index = pid_index[pid_i]
        select_cams = No_index(cams, i_cam)
        if select_cams:
            if len(select_cams) >= num_instances:
                cam_indexes = rng.choice(select_cams, size=num_instances - 1, replace=False)
            else:
                cam_indexes = rng.choice(select_cams, size=num_instances - 1, replace=True)
            for kk in cam_indexes:
                ret.append(index[kk])
        else:
            select_indexes = No_index(index, i)
            if not select_indexes:
                continue
            if len(select_indexes) >= num_instances:
                ind_indexes = rng.choice(select_indexes, size=num_instances - 1, replace=False)
            else:
                ind_indexes = rng.choice(select_indexes, size=num_instances - 1, replace=True)
            for kk in ind_indexes:
                ret.append(index[kk])
    return [int(i) for i in ret]


def data_source(labels, cameras) -> list[tuple[str, int, int]]:
    return [(f"img{i}.jpg", int(label), int(cam)) for i, (label, cam) in enumerate(zip(labels, cameras))]


def groups(indices: list[int], labels: np.ndarray, num_instances: int = K) -> list[list[int]]:
    """A pass -> its per-cluster groups (anchor first): K indices, or 1 for a singleton cluster."""
    sizes = Counter(labels.tolist())
    out, pos = [], 0
    while pos < len(indices):
        label = labels[indices[pos]]
        length = 1 if sizes[label] == 1 else num_instances
        group = indices[pos:pos + length]
        assert len(group) == length and all(labels[i] == label for i in group), "a cluster's group is broken"
        out.append(group)
        pos += length
    return out


def passes(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    clusters = group_clusters(LABELS)
    return [camera_aware_pass(rng, clusters, CAMERAS, K) for _ in range(n)]


def batches(sampler: CameraAwareSampler) -> list[list[int]]:
    return list(iter(sampler))


def test_group_clusters_first_seen_order_and_outliers_dropped():
    clusters = group_clusters(LABELS)
    first_seen = list(dict.fromkeys(int(v) for v in LABELS if v >= 0))
    assert list(clusters) == first_seen and set(clusters) == USABLE
    for label, index in clusters.items():
        assert index.tolist() == np.flatnonzero(LABELS == label).tolist()


def test_companions_come_from_other_cameras():
    for one_pass in passes(60):
        for anchor, *rest in groups(one_pass, LABELS):
            members = np.flatnonzero(LABELS == LABELS[anchor])
            other_cam = members[CAMERAS[members] != CAMERAS[anchor]]
            if other_cam.size:
                assert all(CAMERAS[i] != CAMERAS[anchor] for i in rest)
                assert set(rest) <= set(other_cam.tolist())
                if other_cam.size >= K:  # without replacement
                    assert len(set(rest)) == len(rest) == K - 1
            elif members.size > 1:  # single-camera cluster: the other images
                assert anchor not in rest and len(rest) == K - 1
                if members.size - 1 >= K:
                    assert len(set(rest)) == K - 1
            else:  # singleton
                assert rest == []


def test_with_replacement_below_k_not_below_k_minus_1():
    """Cluster 4 with the camera-0 anchor has exactly K-1 other-camera images: the reference draws them with
    replacement (its test is >= K), so repeats must show up; cluster 3 (2 other images, one camera) too."""
    repeats = Counter()
    k_minus_1_groups = 0
    for one_pass in passes(60):
        for anchor, *rest in groups(one_pass, LABELS):
            label = int(LABELS[anchor])
            if label == 4 and CAMERAS[anchor] == 0:
                k_minus_1_groups += 1
                repeats[4] += len(set(rest)) < len(rest)
            if label == 3:
                repeats[3] += len(set(rest)) < len(rest)
    assert k_minus_1_groups > 5 and repeats[4] > 0
    assert repeats[3] == 60  # 3 draws from 2 images always repeat


def test_every_cluster_once_per_pass_and_anchors_uniform():
    anchors = defaultdict(set)
    for one_pass in passes(200):
        found = groups(one_pass, LABELS)
        assert sorted(int(LABELS[g[0]]) for g in found) == sorted(USABLE)  # each cluster exactly once
        assert len(one_pass) == sum(1 if len(SPEC[label]) == 1 else K for label in USABLE)
        assert all(LABELS[i] >= 0 for i in one_pass)
        for group in found:
            anchors[int(LABELS[group[0]])].add(group[0])
    for label in USABLE:  # every image of a cluster can be its anchor
        assert anchors[label] == set(np.flatnonzero(LABELS == label).tolist())


def test_epoch_reaches_every_cluster_and_never_an_outlier():
    sampler = CameraAwareSampler(LABELS, CAMERAS, num_identities=2, num_instances=K, iterations=30)
    seen = {i for batch in batches(sampler) for i in batch}
    assert {int(LABELS[i]) for i in seen} == USABLE


@pytest.mark.parametrize("num_instances", [1, 2, 4, 7])
def test_pass_matches_reference_transcription(num_instances):
    clusters = group_clusters(LABELS)
    for seed in range(5):
        ours = camera_aware_pass(np.random.default_rng(seed), clusters, CAMERAS, num_instances)
        ref = reference_pass(np.random.default_rng(seed), data_source(LABELS, CAMERAS), num_instances)
        assert ours == ref


def test_sampler_stream_matches_reference_passes_cut_into_batches():
    """P*K = 8, a pass holds 6*4 + 1 = 25 indices: 3 batches per pass, its last index dropped."""
    sampler = CameraAwareSampler(LABELS, CAMERAS, num_identities=2, num_instances=K, iterations=7, seed=3,
                                 stream=1, rank=2, world_size=3)
    sampler.set_epoch(4)
    rng = np.random.default_rng([3, 1, 2, 4])
    expected = []
    for _ in range(3):
        one_pass = reference_pass(rng, data_source(LABELS, CAMERAS), K)
        assert len(one_pass) == 25
        expected += [one_pass[b * 8:(b + 1) * 8] for b in range(3)]
    out = batches(sampler)
    assert len(sampler) == 7 and sampler.batch_size == 8
    assert out == expected[:7]
    assert all(len(batch) == 8 and all(type(i) is int for i in batch) for batch in out)


def test_batches_do_not_straddle_passes():
    """5 clusters x K=2, P=2: a pass is 10 indices = 2 batches + a dropped tail of 2; a batch cut across two passes
    would sometimes hold a cluster twice."""
    labels, cameras = make_data({label: [0, 1, 2] for label in range(5)})
    sampler = CameraAwareSampler(labels, cameras, num_identities=2, num_instances=2, iterations=200)
    for batch in batches(sampler):
        assert len(batch) == 4
        assert labels[batch[0]] == labels[batch[1]] != labels[batch[2]] == labels[batch[3]]


def test_short_passes_are_joined():
    """2 clusters (one singleton), K=2: a pass holds 3 indices < P*K = 8, so 3 passes make one batch, 1 dropped."""
    labels, cameras = make_data({0: [0, 1, 1], 1: [2]})
    sampler = CameraAwareSampler(labels, cameras, num_identities=4, num_instances=2, iterations=4, seed=5)
    rng = np.random.default_rng([5, 0, 0, 0])
    expected = []
    for _ in range(4):
        block = sum((reference_pass(rng, data_source(labels, cameras), 2) for _ in range(3)), [])
        expected.append(block[:8])
    out = batches(sampler)
    assert out == expected
    for batch in out:
        assert Counter(int(labels[i]) for i in batch) in (Counter({0: 6, 1: 2}), Counter({0: 5, 1: 3}))


def test_streams_seeds_ranks_and_epochs():
    def make(**kwargs):
        return CameraAwareSampler(LABELS, CAMERAS, num_identities=2, num_instances=K, iterations=9, **kwargs)

    base = batches(make(seed=7))
    assert batches(make(seed=7)) == base == batches(make(seed=7, stream=0))
    vis, ir = make(seed=7, stream=0), make(seed=7, stream=1)
    assert batches(ir) != base and batches(make(seed=7, stream=1)) == batches(ir)
    assert batches(make(seed=8)) != base
    ranks = [batches(make(seed=7, rank=r, world_size=3)) for r in range(3)]
    assert ranks[0] == base and ranks[1] != ranks[0] and ranks[2] not in (ranks[0], ranks[1])
    vis.set_epoch(1)
    epoch1 = batches(vis)
    assert epoch1 != base and batches(vis) == epoch1
    vis.set_epoch(0)
    assert batches(vis) == base


def test_accepts_lists_arrays_and_tensors():
    a = CameraAwareSampler(torch.tensor(LABELS), torch.tensor(CAMERAS), num_identities=2, num_instances=3,
                           iterations=5)
    b = CameraAwareSampler(LABELS.tolist(), CAMERAS.tolist(), num_identities=2, num_instances=3, iterations=5)
    c = CameraAwareSampler(LABELS.astype(np.int32), CAMERAS, num_identities=2, num_instances=3, iterations=5)
    assert batches(a) == batches(b) == batches(c)


def test_works_as_dataloader_batch_sampler():
    class Indices(Dataset):
        def __len__(self):
            return len(LABELS)

        def __getitem__(self, i):
            return i

    sampler = CameraAwareSampler(LABELS, CAMERAS, num_identities=2, num_instances=2, iterations=3)
    loaded = [b.tolist() for b in DataLoader(Indices(), batch_sampler=sampler)]
    assert loaded == batches(sampler)


@pytest.mark.parametrize("kwargs,message", [
    (dict(num_identities=0), "num_identities"),
    (dict(num_instances=0), "num_instances"),
    (dict(iterations=0), "iterations"),
    (dict(world_size=0), "world_size"),
    (dict(rank=2, world_size=2), "rank"),
    (dict(rank=-1), "rank"),
    (dict(seed=-1), "seed"),
    (dict(stream=-1), "stream"),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CameraAwareSampler(LABELS, CAMERAS, **kwargs)


def test_invalid_inputs():
    with pytest.raises(ValueError, match="length"):
        CameraAwareSampler([0, 0], [0])
    with pytest.raises(ValueError, match="labels must be integers"):
        CameraAwareSampler([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="cameras must be integers"):
        CameraAwareSampler([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="labels must be one-dimensional"):
        CameraAwareSampler([[0, 1]], [0, 1])
    with pytest.raises(ValueError, match="every image is an outlier"):
        CameraAwareSampler([-1, -1], [0, 1])
    with pytest.raises(ValueError, match="every image is an outlier"):
        CameraAwareSampler([], [])
    with pytest.raises(ValueError, match="epoch"):
        CameraAwareSampler(LABELS, CAMERAS).set_epoch(-1)
