"""Ranking metrics of the cross-modality ReID protocols (CMC, mAP, mINP), vectorised, giving the
numbers of the community's standard evaluation code (AGW / ADCA `eval_sysu`, `eval_regdb`,
`eval_llcm`) for the same distances.

Rules per protocol, for each query:
- "sysu": a query from camera 3 drops every gallery image from camera 2 (same location), whatever
  its identity. CMC counts each identity once, at its first kept position.
- "regdb": nothing dropped; plain CMC.
- "llcm": drops gallery images of the query's identity taken by the query's camera; CMC as "sysu".
AP and INP always use the kept ranked list without identity de-duplication. A query whose identity
is absent from its kept gallery is skipped and counted. Rankings use `np.argsort(distmat, axis=1)`,
exactly as the reference code, so ties break identically.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PROTOCOLS = ("sysu", "regdb", "llcm")
MAX_CELLS_PER_CHUNK = 1 << 23  # query x gallery entries handled at once (bounds memory)


@dataclass(frozen=True)
class RankingResult:
    """cmc: [max_rank] fractions (cmc[k-1] = rank-k accuracy); mAP, mINP: fractions."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_queries: int
    num_valid_queries: int

    @property
    def num_skipped_queries(self) -> int:
        """Queries whose identity never appears in their kept gallery."""
        return self.num_queries - self.num_valid_queries

    def rank(self, k: int) -> float:
        """Rank-k accuracy (a fraction); the last CMC value when k exceeds the gallery."""
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def as_dict(self, ranks: tuple[int, ...] = (1, 5, 10, 20)) -> dict:
        """{"R1", "R5", "R10", "R20", "mAP", "mINP"} as fractions, plus query counts."""
        summary = {f"R{k}": self.rank(k) for k in ranks}
        return summary | {"mAP": self.mAP, "mINP": self.mINP, "num_queries": self.num_queries,
                          "num_skipped_queries": self.num_skipped_queries}


def evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, protocol: str = "sysu",
                     max_rank: int = 20) -> RankingResult:
    """CMC, mAP and mINP of the query-gallery distances `distmat` [Q, G] under `protocol`.

    q_pids, q_camids: [Q]; g_pids, g_camids: [G] (numpy arrays, lists or tensors).
    Raises ValueError when no query has a match in its kept gallery (the reference asserts).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: expected one of {PROTOCOLS}")
    distmat = _as_array(distmat, "distmat", ndim=2)
    num_q, num_g = distmat.shape
    q_pids, q_camids = _as_array(q_pids, "q_pids", size=num_q), _as_array(q_camids, "q_camids", size=num_q)
    g_pids, g_camids = _as_array(g_pids, "g_pids", size=num_g), _as_array(g_camids, "g_camids", size=num_g)
    if num_g == 0 or num_q == 0:
        raise ValueError(f"no query identity appears in its kept gallery: {num_q} queries, {num_g} gallery images")
    max_rank = min(max_rank, num_g)
    chunk = max(1, MAX_CELLS_PER_CHUNK // max(num_g, 1))
    parts = [_evaluate_chunk(distmat[s:s + chunk], q_pids[s:s + chunk], q_camids[s:s + chunk],
                             g_pids, g_camids, protocol, max_rank) for s in range(0, num_q, chunk)]
    first_ranks, ap, inp = (np.concatenate(values) for values in zip(*parts))
    if len(ap) == 0:
        raise ValueError(f"no query identity appears in its kept gallery ({num_q} queries, {num_g} gallery "
                         f"images, protocol {protocol!r}): nothing to evaluate")
    cmc = (first_ranks[:, None] <= np.arange(1, max_rank + 1)[None, :]).mean(axis=0)
    return RankingResult(cmc=cmc, mAP=float(np.mean(ap)), mINP=float(np.mean(inp)),
                         num_queries=num_q, num_valid_queries=len(ap))


def _evaluate_chunk(distmat, q_pids, q_camids, g_pids, g_camids, protocol, max_rank):
    """(first-match ranks, AP, INP) of the valid queries of one chunk of rows.

    Only the (few) matches are visited after the sort: each match's 1-based position among the kept
    entries is its column minus the dropped entries before it, counted with `searchsorted`.
    """
    num_q, num_g = distmat.shape
    order = np.argsort(distmat, axis=1)
    matches = g_pids[order] == q_pids[:, None]
    keep_by_gallery = _kept(protocol, q_pids, q_camids, g_pids, g_camids)  # [q, G] gallery order; None: all
    if keep_by_gallery is None:
        hit_rows, hit_cols = np.nonzero(matches)  # row by row, best first
        dropped_before = 0
    else:
        keep = np.take_along_axis(keep_by_gallery, order, axis=1)  # ranked order
        hit_rows, hit_cols = np.nonzero(matches & keep)
        drop_rows, drop_cols = np.nonzero(~keep)
        dropped_before = (np.searchsorted(drop_rows * num_g + drop_cols, hit_rows * num_g + hit_cols)
                          - np.searchsorted(drop_rows, hit_rows))
    num_relevant = np.bincount(hit_rows, minlength=num_q)
    valid = num_relevant > 0
    kept_position = hit_cols + 1 - dropped_before
    row_start = np.concatenate([[0], np.cumsum(num_relevant)[:-1]])
    hit_number = np.arange(len(hit_rows)) - row_start[hit_rows] + 1  # 1 for a row's first match
    ap = np.bincount(hit_rows, weights=hit_number / kept_position, minlength=num_q)[valid] / num_relevant[valid]
    last = row_start[valid] + num_relevant[valid] - 1
    inp = num_relevant[valid] / kept_position[last]
    if protocol == "regdb":
        first_rank = kept_position[row_start[valid]]
    else:
        first_rank = _first_identity_rank(order, keep_by_gallery, q_pids, g_pids)[valid]
    return first_rank, ap, inp


def _kept(protocol, q_pids, q_camids, g_pids, g_camids) -> np.ndarray | None:
    """[q, G] bool, gallery order: which gallery images each query keeps; None when it keeps all."""
    if protocol == "sysu":
        return ~((q_camids[:, None] == 3) & (g_camids[None, :] == 2))
    if protocol == "llcm":
        return ~((g_pids[None, :] == q_pids[:, None]) & (g_camids[None, :] == q_camids[:, None]))
    return None


def _first_identity_rank(order, keep_by_gallery, q_pids, g_pids) -> np.ndarray:
    """1-based rank of the query's identity in its kept ranked list with each identity counted once.

    = 1 + the number of other identities whose first kept image ranks before the query identity's
    first kept image. Computed per identity group with `np.minimum.reduceat` over gallery columns.
    """
    num_q, num_g = order.shape
    position = np.empty(order.shape, dtype=np.int32)
    position[np.arange(num_q)[:, None], order] = np.arange(num_g, dtype=np.int32)  # rank of each gallery image
    position[~keep_by_gallery] = num_g  # dropped images never come first
    identities, codes = np.unique(g_pids, return_inverse=True)
    by_identity = np.argsort(codes, kind="stable")
    group_starts = np.flatnonzero(np.diff(codes[by_identity], prepend=-1))
    first_seen = np.minimum.reduceat(position[:, by_identity], group_starts, axis=1)  # [q, identities]
    query_code = np.searchsorted(identities, q_pids).clip(max=len(identities) - 1)
    own_first = first_seen[np.arange(len(q_pids)), query_code]
    return (first_seen < own_first[:, None]).sum(axis=1) + 1


def _as_array(values, name: str, ndim: int = 1, size: int | None = None) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != ndim or (size is not None and array.shape[0] != size):
        expected = f"[{size}]" if size is not None else f"{ndim}-D"
        raise ValueError(f"{name} must be {expected}, got shape {array.shape}")
    return array
