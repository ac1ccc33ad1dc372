"""Cross-modality identity batch sampler: P identities x K images per modality, visible half then infrared half."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

_MODALITIES = ("vis", "ir")


def _as_labels(labels) -> np.ndarray:
    """Sequence / array / tensor of ints -> int64 array [N]."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be one-dimensional [N], got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers (-1 = outlier), got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _as_is_ir(modalities) -> np.ndarray:
    """"vis"/"ir" strings or bools (True = infrared) -> bool array [N]."""
    if isinstance(modalities, torch.Tensor):
        modalities = modalities.detach().cpu().numpy()
    arr = np.asarray(modalities)
    if arr.ndim != 1:
        raise ValueError(f"modalities must be one-dimensional [N], got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    unknown = sorted(set(arr.tolist()) - set(_MODALITIES))
    if unknown:
        raise ValueError(f"modalities must be 'vis'/'ir' strings or bools (True = ir), got {unknown[:5]}")
    return arr == "ir"


def _group(labels: np.ndarray, mask: np.ndarray) -> dict[int, np.ndarray]:
    """label -> sorted dataset indices [n] with that label among ``mask``; outliers (< 0) dropped."""
    keep = np.flatnonzero(mask & (labels >= 0))
    order = np.argsort(labels[keep], kind="stable")
    keep = keep[order]
    values, starts = np.unique(labels[keep], return_index=True)
    return {int(v): chunk for v, chunk in zip(values, np.split(keep, starts[1:]))}


def _draw(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """``count`` items of ``pool``: without replacement when it has enough, else with replacement."""
    return rng.choice(pool, size=count, replace=len(pool) < count)


class CrossModalitySampler(Sampler[list[int]]):
    """Batch sampler (``DataLoader(batch_sampler=...)``) of ``iterations`` batches of 2 * P * K dataset indices.

    labels: [N] ints, -1 = outlier (never sampled). modalities: [N] "vis"/"ir" or bool is_ir.
    Each batch is [visible picks..., infrared picks...], each half P labels x K images in label order.
    shared_labels=True: P labels among those with images of BOTH modalities, K visible and K infrared images of
    each, so slot i and slot i + P*K carry the same label. shared_labels=False: P visible labels and P infrared
    labels drawn independently (separate label spaces). Labels are drawn without replacement when there are at
    least P usable ones, images without replacement when a label has at least K (else with replacement).
    The stream is fixed by (seed, rank, epoch); call ``set_epoch`` every epoch. Under DDP each rank yields its own
    ``iterations`` batches (``world_size`` is only validated: ranks differ through the seed mix).
    """

    def __init__(self, labels, modalities, *, num_identities: int = 16, num_instances: int = 16,
                 iterations: int = 200, seed: int = 0, shared_labels: bool = True, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__()
        self.labels = _as_labels(labels)
        self.is_ir = _as_is_ir(modalities)
        if len(self.labels) != len(self.is_ir):
            raise ValueError(f"labels and modalities differ in length: {len(self.labels)} vs {len(self.is_ir)}")
        for name, value in (("num_identities", num_identities), ("num_instances", num_instances),
                            ("iterations", iterations), ("world_size", world_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.num_identities, self.num_instances, self.iterations = num_identities, num_instances, iterations
        self.seed, self.rank, self.world_size, self.epoch = int(seed), int(rank), int(world_size), 0
        self.shared_labels = shared_labels
        self.vis_pools = _group(self.labels, ~self.is_ir)
        self.ir_pools = _group(self.labels, self.is_ir)
        self.vis_labels, self.ir_labels = self._usable_labels()

    def _usable_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Label arrays the visible / infrared halves draw from; ValueError when one is empty."""
        vis, ir = sorted(self.vis_pools), sorted(self.ir_pools)
        if self.shared_labels:
            mixed = np.array(sorted(set(vis) & set(ir)), dtype=np.int64)
            if mixed.size == 0:
                raise ValueError(
                    f"shared_labels=True needs labels with images of both modalities, but none of the "
                    f"{len(set(vis) | set(ir))} non-outlier labels spans visible and infrared ({len(vis)} labels "
                    f"have visible images, {len(ir)} infrared); use shared_labels=False for per-modality label "
                    f"spaces")
            return mixed, mixed
        if not vis or not ir:
            missing = "visible" if not vis else "infrared"
            raise ValueError(f"no usable {missing} images: every {missing} image is an outlier (-1) or absent")
        return np.array(vis, dtype=np.int64), np.array(ir, dtype=np.int64)

    @property
    def batch_size(self) -> int:
        """2 * P * K: indices per batch."""
        return 2 * self.num_identities * self.num_instances

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's stream (like DistributedSampler.set_epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.iterations

    def _half(self, rng: np.random.Generator, chosen: np.ndarray, pools: dict[int, np.ndarray]) -> list[int]:
        """P chosen labels -> P*K dataset indices, K per label in label order."""
        picks = [_draw(rng, pools[int(label)], self.num_instances) for label in chosen]
        return np.concatenate(picks).tolist()

    def _batch(self, rng: np.random.Generator) -> list[int]:
        p = self.num_identities
        vis_chosen = _draw(rng, self.vis_labels, p)
        ir_chosen = vis_chosen if self.shared_labels else _draw(rng, self.ir_labels, p)
        return self._half(rng, vis_chosen, self.vis_pools) + self._half(rng, ir_chosen, self.ir_pools)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.rank, self.epoch])
        for _ in range(self.iterations):
            yield self._batch(rng)
