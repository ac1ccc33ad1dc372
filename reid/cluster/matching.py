"""PGM's progressive graph matching of visible and infrared clusters (zesenwu23/USL-VI-ReID train_sysu.py:816-848,
train_regdb.py:683-740; PCLHD train_sysu.py:984-1036).

The cost of matching visible cluster v with infrared cluster i is 1 / exp(cos(c_v, c_i)) of their L2-normalised
centroids (float32, as the references compute it). With Cv >= Ci:
1. the cost [Cv, Ci] is padded with Cv - Ci zero columns and solved as a square assignment (Hungarian): every
   infrared cluster gets one visible partner (`ir_to_vis`), Ci visible clusters get their infrared partner;
2. the visible clusters left over are matched again, to the real columns only, many visible to one infrared,
   round after round until each has a partner (`vis_to_ir`). The references stop after one such round (PGM) or
   two (PCLHD), and fail on the leftovers they leave (a KeyError in their trainer); more rounds only continue
   the same rule. (When a round has more leftover rows than columns, the references also record each column
   under the round's first rows, not under the rows the assignment chose; that happens only in the cases their
   trainer then fails on, and here the chosen rows get them.)

Rules (`rule`):
- "one_sided": PGM's train_sysu.py and PCLHD's train_regdb.py: with more infrared than visible clusters nothing
  is matched (the trainer then has no cross-modal term).
- "symmetric": PGM's train_regdb.py: with more infrared clusters the roles swap (every infrared cluster gets a
  visible partner, each visible cluster one infrared partner from the first round).
- "pclhd": PCLHD's train_sysu.py `PGM`: "one_sided", except that when the visible clusters left over after round
  1 are at least as many as the infrared clusters, round 2 is again a padded square assignment among them and,
  from then on, every round also moves the infrared clusters it matches to their new visible partner. (Its code
  fails with more infrared than visible clusters; here that case is "one_sided"'s.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

MATCHING_RULES = ("one_sided", "symmetric", "pclhd")


@dataclass(frozen=True)
class ClusterMatching:
    """vis_to_ir [Cv] and ir_to_vis [Ci] int64: each cluster's partner in the other modality, -1 for none."""

    vis_to_ir: np.ndarray
    ir_to_vis: np.ndarray

    @property
    def matched(self) -> bool:
        """Whether any cluster has a partner (the references' `if r2i:`)."""
        return bool((self.vis_to_ir >= 0).any() or (self.ir_to_vis >= 0).any())


def matching_cost(vis_centroids: torch.Tensor, ir_centroids: torch.Tensor) -> np.ndarray:
    """[Cv, Ci] float32: 1 / exp(cos) of the L2-normalised centroids [Cv, D] and [Ci, D] (the references' cost)."""
    vis, ir = (F.normalize(torch.as_tensor(c).float().cpu(), dim=1) for c in (vis_centroids, ir_centroids))
    return (1 / (vis @ ir.t()).exp()).numpy()


def progressive_graph_matching(vis_centroids: torch.Tensor, ir_centroids: torch.Tensor, rule: str = "one_sided"
                               ) -> ClusterMatching:
    """Match visible clusters (centroids [Cv, D]) and infrared clusters ([Ci, D]) by PGM's rule (module doc)."""
    if rule not in MATCHING_RULES:
        raise ValueError(f"unknown matching rule {rule!r}: expected one of {MATCHING_RULES}")
    num_vis, num_ir = len(vis_centroids), len(ir_centroids)
    if num_vis >= num_ir > 0:
        vis_to_ir, ir_to_vis = _match_rows(matching_cost(vis_centroids, ir_centroids),
                                           follow_later_rounds=rule == "pclhd")
        return ClusterMatching(vis_to_ir, ir_to_vis)
    if rule == "symmetric" and num_ir > num_vis > 0:  # the reference computes this cost as ir @ vis.T
        ir_to_vis, vis_to_ir = _match_rows(matching_cost(ir_centroids, vis_centroids), follow_later_rounds=False)
        return ClusterMatching(vis_to_ir, ir_to_vis)
    return ClusterMatching(np.full(num_vis, -1, dtype=np.int64), np.full(num_ir, -1, dtype=np.int64))


def _match_rows(cost: np.ndarray, *, follow_later_rounds: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row_to_col [R], col_to_row [C]) for cost [R, C] with R >= C: round 1 a square assignment with R - C zero
    columns, then rounds on the unmatched rows against the real columns until every row has a column.
    follow_later_rounds: PCLHD's variant (module doc)."""
    num_rows, num_cols = cost.shape
    row_to_col = np.full(num_rows, -1, dtype=np.int64)
    col_to_row = np.full(num_cols, -1, dtype=np.int64)
    padded = np.concatenate([cost, np.zeros((num_rows, num_rows - num_cols), dtype=cost.dtype)], axis=1)
    rows, cols = linear_sum_assignment(padded)
    real = cols < num_cols
    row_to_col[rows[real]], col_to_row[cols[real]] = cols[real], rows[real]
    unmatched = rows[~real]
    follow = follow_later_rounds and len(unmatched) >= num_cols
    if follow:  # PCLHD's round 2: padded again among the leftovers (its columns: the real ones, then zeros)
        rows, cols = linear_sum_assignment(padded[unmatched][:, :len(unmatched)])
        real = cols < num_cols
        row_to_col[unmatched[rows[real]]], col_to_row[cols[real]] = cols[real], unmatched[rows[real]]
        unmatched = unmatched[rows[~real]]
    while len(unmatched):
        rows, cols = linear_sum_assignment(cost[unmatched])
        row_to_col[unmatched[rows]] = cols
        if follow:
            col_to_row[cols] = unmatched[rows]
        unmatched = np.setdiff1d(unmatched, unmatched[rows])
    return row_to_col, col_to_row
