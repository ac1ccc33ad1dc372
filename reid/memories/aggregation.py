"""ADCA's cross-modality memory aggregation (CMA; yangbincv/ADCA adca_sysu_train.py:814-850, at every stage-2 epoch
after the memories are built).

1. Every visible-infrared image pair whose feature similarity (the clustering features' dot product) is at least
   `threshold` (0.5) votes for the pair of their clusters (pairs with an outlier vote for nothing).
2. Cluster pairs are ranked by their number of votes, most first; equal counts keep the order in which the pairs
   first appear in the image pairs sorted by decreasing similarity, i.e. by their most similar image pair.
3. Greedily, a cluster pair whose visible and infrared clusters are both still free is taken:
   vis[v] <- weight * vis[v] + (1 - weight) * ir[i], weight 0.1, not normalised again; ir[i] is unchanged (the
   reference's second line reads the row it writes: 0.1 ir + 0.9 ir).

The reference sorts the dense Nv x Ni similarity matrix; here the votes are counted in blocks of visible rows
(`block_rows` x Ni at a time), so memory stays O(block x Ni + Cv x Ci).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import PrototypeMemory


def cross_modal_cluster_votes(vis_features: torch.Tensor, ir_features: torch.Tensor, vis_labels, ir_labels, *,
                              threshold: float = 0.5, block_rows: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(votes [Cv, Ci] int64, best [Cv, Ci] float32): for each cluster pair, the number of its image pairs with
    vis_features [Nv, D] . ir_features [Ni, D] >= threshold, and their highest similarity (-inf without votes).
    Labels [Nv] / [Ni] in 0..C-1, -1 for outliers."""
    vis_labels, ir_labels = (torch.as_tensor(np.asarray(labels), dtype=torch.int64) for labels in (vis_labels, ir_labels))
    num_vis, num_ir = int(vis_labels.max()) + 1, int(ir_labels.max()) + 1
    votes = torch.zeros(num_vis * num_ir, dtype=torch.int64)
    best = torch.full((num_vis * num_ir,), -torch.inf)
    ir = ir_features.float()
    for start in range(0, len(vis_features), block_rows):
        similarity = vis_features[start:start + block_rows].float() @ ir.t()
        rows, cols = torch.nonzero(similarity >= threshold, as_tuple=True)
        pair_vis, pair_ir = vis_labels[start + rows.cpu()], ir_labels[cols.cpu()]
        clustered = (pair_vis >= 0) & (pair_ir >= 0)
        pairs = (pair_vis * num_ir + pair_ir)[clustered]
        votes += torch.bincount(pairs, minlength=num_vis * num_ir)
        best = best.scatter_reduce(0, pairs, similarity[rows, cols].cpu()[clustered], "amax")
    return votes.view(num_vis, num_ir).numpy(), best.view(num_vis, num_ir).numpy()


def greedy_cluster_pairs(votes: np.ndarray, best: np.ndarray) -> list[tuple[int, int]]:
    """(visible cluster, infrared cluster) pairs taken greedily by (votes, best similarity), both decreasing, each
    cluster at most once; pairs without votes are never taken."""
    vis, ir = np.nonzero(votes > 0)
    order = np.lexsort((-best[vis, ir], -votes[vis, ir]))
    taken_vis, taken_ir, pairs = set(), set(), []
    for v, i in zip(vis[order].tolist(), ir[order].tolist()):
        if v not in taken_vis and i not in taken_ir:
            pairs.append((v, i))
            taken_vis.add(v)
            taken_ir.add(i)
    return pairs


@torch.no_grad()
def aggregate_cross_modal(vis_memory: PrototypeMemory, ir_memory: PrototypeMemory, vis_features: torch.Tensor,
                          ir_features: torch.Tensor, vis_labels, ir_labels, *, threshold: float = 0.5,
                          weight: float = 0.1) -> list[tuple[int, int]]:
    """ADCA's CMA on two one-prototype-per-cluster memories, in place; returns the aggregated (vis, ir) cluster
    pairs. vis_features [Nv, D] / ir_features [Ni, D]: the features the memories were built from, labels their
    clusters (-1 = outlier)."""
    votes, best = cross_modal_cluster_votes(vis_features, ir_features, vis_labels, ir_labels, threshold=threshold)
    pairs = greedy_cluster_pairs(votes, best)
    if pairs:
        vis_rows, ir_rows = (torch.tensor(rows, device=vis_memory.device) for rows in zip(*pairs))
        ir_prototypes = ir_memory.prototypes[ir_rows.to(ir_memory.device)].to(vis_memory.device)
        vis_memory.prototypes[vis_rows] = weight * vis_memory.prototypes[vis_rows] + (1 - weight) * ir_prototypes
    return pairs
