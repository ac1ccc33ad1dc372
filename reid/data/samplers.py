"""Camera-aware P x K batch sampler over ONE modality's images (the reference's RandomMultipleGallerySampler)."""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import Sampler


def _as_labels(values, name: str = "labels") -> np.ndarray:
    """Sequence / array / tensor of ints -> int64 array [N]; ``name`` is the argument named in errors."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional [N], got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def group_clusters(labels: np.ndarray) -> dict[int, np.ndarray]:
    """label -> ascending indices [n] of its images; outliers (< 0) dropped.

    Labels are keyed in order of first appearance, like the reference's ``pids = list(pid_index.keys())``, so the
    cluster permutation of a pass means the same thing here and there.
    """
    keep = np.flatnonzero(labels >= 0)
    if keep.size == 0:
        return {}
    order = np.argsort(labels[keep], kind="stable")
    sorted_idx = keep[order]
    values, starts = np.unique(labels[sorted_idx], return_index=True)
    chunks = np.split(sorted_idx, starts[1:])  # label-sorted; each chunk ascending (stable sort)
    first_seen = np.argsort([chunk[0] for chunk in chunks], kind="stable")
    return {int(values[c]): chunks[c] for c in first_seen}


def _draw(rng: np.random.Generator, pool: np.ndarray, num_instances: int) -> np.ndarray:
    """K-1 items of ``pool``; without replacement iff ``len(pool) >= K`` (the reference tests >= K, not >= K-1)."""
    return rng.choice(pool, size=num_instances - 1, replace=len(pool) < num_instances)


def camera_aware_pass(rng: np.random.Generator, clusters: Mapping[int, np.ndarray], cameras: np.ndarray,
                      num_instances: int) -> list[int]:
    """One pass of the reference sampler: every cluster once, in random order, as anchor + K-1 companions.

    clusters: label -> dataset indices of its images (ascending, as ``group_clusters`` gives); cameras: [N] camera of
    every dataset index. Per cluster (in ``rng.permutation`` order): anchor = a uniform draw among its images; the
    K-1 companions come from its images in other cameras than the anchor's when there are any, else from its other
    images; a singleton cluster contributes the anchor alone. Random calls, in order: ``rng.permutation`` once, then
    per cluster ``rng.integers`` (anchor) and, unless singleton, ``rng.choice`` (companions).
    """
    members = list(clusters.values())
    out: list[int] = []
    for c in rng.permutation(len(members)):
        index = members[c]
        anchor = int(rng.integers(len(index)))
        out.append(int(index[anchor]))
        cams = cameras[index]
        other_cam = np.flatnonzero(cams != cams[anchor])
        if other_cam.size:
            pool = other_cam
        else:  # the whole cluster is in the anchor's camera
            pool = np.delete(np.arange(len(index)), anchor)
            if pool.size == 0:  # singleton: the anchor alone
                continue
        out.extend(index[_draw(rng, pool, num_instances)].tolist())
    return out


class CameraAwareSampler(Sampler[list[int]]):
    """Batch sampler (``DataLoader(batch_sampler=...)``) of ``iterations`` batches of P*K indices of ONE modality.

    Follows ``RandomMultipleGallerySampler`` of clustercontrast/utils/data/sampler.py (cluster-contrast), the
    sampler of ADCA ``adca_sysu_train.py`` and PGM ``train_sysu.py``. The trainer makes one sampler per modality
    (visible and infrared DataLoaders zipped), so the two halves are independent; pass a different ``stream`` to
    each so they draw differently.

    labels: [N] ints, -1 = outlier (never sampled); cameras: [N] ints; indices yielded are positions in these.
    One *pass* (``camera_aware_pass``):
      1. every cluster is visited once, in a random order (a permutation);
      2. anchor: a uniform draw among the cluster's images;
      3. when the cluster has images in other cameras than the anchor's, K-1 of them are drawn, without replacement
         iff there are >= K of them (the reference's test: >= K, not >= K-1), else with replacement;
      4. otherwise K-1 of the cluster's other images, same replacement rule; a singleton cluster gives its anchor only.
    Batches: the pass (a flat list) is cut into consecutive batches of P*K and its incomplete tail dropped, then a new
    pass starts (the reference's DataLoader drop_last=True + IterLoader restart), until ``iterations`` batches.
    A cluster's K images share a batch unless singletons shift the K-groups, as in the reference.
    Deviation: a pass shorter than one batch (fewer than P clusters, or singletons) would stall the reference; here
    consecutive passes are joined until the joined block fills a batch, and that block is cut the same way (its
    tail dropped), so such batches repeat clusters.
    Random draws from ``np.random.default_rng([seed, stream, rank, epoch])``; call ``set_epoch`` every epoch. Under
    DDP each rank yields its own ``iterations`` batches (``world_size`` is only validated; ranks differ by the seed).
    """

    def __init__(self, labels, cameras, *, num_identities: int = 8, num_instances: int = 4,
                 iterations: int = 200, seed: int = 0, stream: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__()
        self.labels = _as_labels(labels)
        self.cameras = _as_labels(cameras, "cameras")
        if len(self.labels) != len(self.cameras):
            raise ValueError(f"labels and cameras differ in length: {len(self.labels)} vs {len(self.cameras)}")
        for name, value in (("num_identities", num_identities), ("num_instances", num_instances),
                            ("iterations", iterations), ("world_size", world_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, value in (("seed", seed), ("stream", stream)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.num_identities, self.num_instances = int(num_identities), int(num_instances)
        self.iterations = int(iterations)
        self.seed, self.stream, self.rank, self.world_size = int(seed), int(stream), int(rank), int(world_size)
        self.epoch = 0
        self.clusters = group_clusters(self.labels)
        if not self.clusters:
            raise ValueError(f"no usable image: every image is an outlier (-1) ({len(self.labels)} images)")

    @property
    def batch_size(self) -> int:
        """P * K: indices per batch."""
        return self.num_identities * self.num_instances

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's stream (like DistributedSampler.set_epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.iterations

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.stream, self.rank, self.epoch])
        size, emitted, block = self.batch_size, 0, []
        while emitted < self.iterations:
            block += camera_aware_pass(rng, self.clusters, self.cameras, self.num_instances)
            if len(block) < size:  # a pass shorter than a batch: join the next one
                continue
            for start in range(0, len(block) - size + 1, size):
                yield block[start:start + size]
                emitted += 1
                if emitted == self.iterations:
                    return
            block = []  # the incomplete tail is dropped
