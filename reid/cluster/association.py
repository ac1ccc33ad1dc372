"""Plain cross-modal cluster associations: per-modality clusters matched visible <-> infrared one to one by
their centroids (Hungarian matching, or entropic optimal transport), then merged into one joint label space.
Library functions that no method trains with; PGM's own rule (padding, then the leftovers matched again) is
`reid.cluster.matching.progressive_graph_matching`."""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from reid.cluster.clusterers import as_int_array, modality_is_ir

logger = logging.getLogger(__name__)

ASSOCIATION_METHODS = ("hungarian", "sinkhorn")
Pair = tuple[int, int, float]


def cluster_centroids(features, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids [C, D] float32 L2-normalised, cluster_ids [C] int64 increasing) of features [N, D]
    grouped by labels [N]; -1 (outliers) is ignored. Both on the device of features."""
    features = torch.as_tensor(features).float()
    labels = torch.as_tensor(labels)
    if features.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must be [N] with N = {features.shape[0]} (rows of features), "
                         f"got shape {tuple(labels.shape)}")
    labels = labels.to(device=features.device, dtype=torch.int64)
    clustered = labels >= 0
    cluster_ids, index = torch.unique(labels[clustered], return_inverse=True)
    sums = features.new_zeros(len(cluster_ids), features.shape[1])
    sums.index_add_(0, index, features[clustered])
    return F.normalize(sums, dim=1), cluster_ids


def cosine_similarity_matrix(vis_centroids, ir_centroids) -> np.ndarray:
    """Cosine similarity [Cv, Ci] (float64) between two sets of centroids [Cv, D] and [Ci, D]."""
    vis = _as_matrix(vis_centroids, "vis_centroids")
    ir = _as_matrix(ir_centroids, "ir_centroids")
    if vis.shape[1] != ir.shape[1]:
        raise ValueError(f"vis_centroids and ir_centroids must share the feature size, got {vis.shape[1]} "
                         f"and {ir.shape[1]}")
    vis /= np.maximum(np.linalg.norm(vis, axis=1, keepdims=True), 1e-12)
    ir /= np.maximum(np.linalg.norm(ir, axis=1, keepdims=True), 1e-12)
    return vis @ ir.T


def associate_hungarian(vis_centroids, ir_centroids, *, min_similarity: float | None = None) -> list[Pair]:
    """One-to-one matching maximising the total cosine similarity; min(Cv, Ci) pairs
    (row, col, cosine), fewer when min_similarity drops weak ones. Cv != Ci is fine."""
    similarity = cosine_similarity_matrix(vis_centroids, ir_centroids)
    if similarity.size == 0:
        return []
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    return _pairs(similarity, rows, cols, min_similarity)


def associate_sinkhorn(vis_centroids, ir_centroids, epsilon: float = 0.05, num_iters: int = 200,
                       min_similarity: float | None = None, unmatched_similarity: float | None = 0.0) -> list[Pair]:
    """Entropic OT (log-domain Sinkhorn) on cost 1 - cosine; pairs (row, col, cosine) are the mutual
    argmax of the transport plan.

    unmatched_similarity: with a number (default 0.0), a dustbin row and column (as in SuperGlue)
    take the mass of clusters that have no partner more similar than that, so unequal cluster counts
    (3 vis vs 7 ir) do not push mass onto wrong partners; a cluster whose best entry is the dustbin
    stays unmatched. None: plain balanced OT between uniform marginals 1/Cv and 1/Ci.
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if int(num_iters) != num_iters or num_iters < 1:
        raise ValueError(f"num_iters must be a positive integer, got {num_iters}")
    similarity = cosine_similarity_matrix(vis_centroids, ir_centroids)
    if similarity.size == 0:
        return []
    num_vis, num_ir = similarity.shape
    if unmatched_similarity is None:
        plan = sinkhorn_plan(1.0 - similarity, epsilon=epsilon, num_iters=int(num_iters))
    else:
        cost = np.full((num_vis + 1, num_ir + 1), 1.0 - unmatched_similarity)
        cost[:num_vis, :num_ir] = 1.0 - similarity
        row_mass = np.append(np.ones(num_vis), num_ir)
        col_mass = np.append(np.ones(num_ir), num_vis)
        plan = sinkhorn_plan(cost, epsilon=epsilon, num_iters=int(num_iters), row_mass=row_mass, col_mass=col_mass)
    best_col = plan[:num_vis].argmax(axis=1)  # == num_ir: the dustbin
    best_row = plan[:, :num_ir].argmax(axis=0)  # == num_vis: the dustbin
    rows = np.flatnonzero(best_col < num_ir)
    rows = rows[best_row[best_col[rows]] == rows]
    return _pairs(similarity, rows, best_col[rows], min_similarity)


def sinkhorn_plan(cost: np.ndarray, *, epsilon: float, num_iters: int, row_mass: np.ndarray | None = None,
                  col_mass: np.ndarray | None = None) -> np.ndarray:
    """Entropic transport plan [R, C] for cost [R, C] (log-domain updates).

    row_mass [R], col_mass [C]: the marginals up to scale (uniform when None); both are normalised
    to sum to 1.
    """
    log_kernel = torch.as_tensor(-cost / epsilon, dtype=torch.float64)
    num_rows, num_cols = log_kernel.shape
    log_a = _log_marginal(row_mass, num_rows)
    log_b = _log_marginal(col_mass, num_cols)
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    for _ in range(num_iters):
        f = log_a - torch.logsumexp(log_kernel + g[None, :], dim=1)
        g = log_b - torch.logsumexp(log_kernel + f[:, None], dim=0)
    return torch.exp(f[:, None] + log_kernel + g[None, :]).numpy()


def _log_marginal(mass: np.ndarray | None, size: int) -> torch.Tensor:
    mass = np.ones(size) if mass is None else np.asarray(mass, dtype=np.float64)
    return torch.as_tensor(np.log(mass / mass.sum()), dtype=torch.float64)


def merge_associated_labels(vis_labels, ir_labels, pairs, vis_cluster_ids, ir_cluster_ids
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Joint int64 labels (vis_out [Nv], ir_out [Ni]), consecutive from 0: the vis clusters in
    vis_cluster_ids order, a matched ir cluster taking its partner's label, then the unmatched ir
    clusters; -1 stays -1. pairs: (row, col, ...) indices into vis_cluster_ids / ir_cluster_ids."""
    vis_labels, vis_ids = as_int_array(vis_labels, "vis_labels"), as_int_array(vis_cluster_ids, "vis_cluster_ids")
    ir_labels, ir_ids = as_int_array(ir_labels, "ir_labels"), as_int_array(ir_cluster_ids, "ir_cluster_ids")
    for ids, ids_name in ((vis_ids, "vis_cluster_ids"), (ir_ids, "ir_cluster_ids")):
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"{ids_name} must not repeat a cluster id")
    partner = _partner_of_ir(pairs, len(vis_ids), len(ir_ids))
    vis_joint = np.arange(len(vis_ids), dtype=np.int64)
    ir_joint = np.empty(len(ir_ids), dtype=np.int64)
    unmatched = partner < 0
    ir_joint[~unmatched] = vis_joint[partner[~unmatched]]
    ir_joint[unmatched] = len(vis_ids) + np.arange(int(unmatched.sum()))
    return (_map_labels(vis_labels, vis_ids, vis_joint, "vis_labels", "vis_cluster_ids"),
            _map_labels(ir_labels, ir_ids, ir_joint, "ir_labels", "ir_cluster_ids"))


def associate_per_modality(features, labels, modality, method: str = "hungarian", *,
                           min_similarity: float | None = None, epsilon: float = 0.05,
                           num_iters: int = 200, unmatched_similarity: float | None = 0.0) -> np.ndarray:
    """Joint int64 labels [N] from per-modality cluster labels [N] (the two modalities' label spaces
    may overlap; -1 = outlier) of features [N, D]; modality: "vis"/"ir" strings or bool is_ir [N].
    epsilon, num_iters and unmatched_similarity are for method="sinkhorn"."""
    if method not in ASSOCIATION_METHODS:
        raise ValueError(f"unknown association method {method!r}: expected one of {', '.join(ASSOCIATION_METHODS)}")
    features = torch.as_tensor(features).float()
    labels = as_int_array(labels, "labels")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"labels must be [N] with N = {features.shape[0]} (rows of features), got {labels.shape}")
    is_ir = modality_is_ir(modality, len(labels))
    vis_index, ir_index = np.flatnonzero(~is_ir), np.flatnonzero(is_ir)
    vis_centroids, vis_ids = cluster_centroids(features[vis_index], labels[vis_index])
    ir_centroids, ir_ids = cluster_centroids(features[ir_index], labels[ir_index])
    if method == "hungarian":
        pairs = associate_hungarian(vis_centroids, ir_centroids, min_similarity=min_similarity)
    else:
        pairs = associate_sinkhorn(vis_centroids, ir_centroids, epsilon=epsilon, num_iters=num_iters,
                                   min_similarity=min_similarity, unmatched_similarity=unmatched_similarity)
    logger.info("%s association: %d pairs between %d vis and %d ir clusters", method, len(pairs),
                len(vis_ids), len(ir_ids))
    vis_out, ir_out = merge_associated_labels(labels[vis_index], labels[ir_index], pairs,
                                              vis_ids.cpu().numpy(), ir_ids.cpu().numpy())
    joint = np.full(len(labels), -1, dtype=np.int64)
    joint[vis_index], joint[ir_index] = vis_out, ir_out
    return joint


def _pairs(similarity: np.ndarray, rows, cols, min_similarity: float | None) -> list[Pair]:
    pairs = [(int(i), int(j), float(similarity[i, j])) for i, j in zip(rows, cols)]
    if min_similarity is not None:
        pairs = [pair for pair in pairs if pair[2] >= min_similarity]
    return sorted(pairs)


def _partner_of_ir(pairs, num_vis: int, num_ir: int) -> np.ndarray:
    """partner[j] = the vis cluster index matched to ir cluster index j, -1 when unmatched."""
    partner = np.full(num_ir, -1, dtype=np.int64)
    seen_rows = set()
    for pair in pairs:
        row, col = int(pair[0]), int(pair[1])
        if not (0 <= row < num_vis and 0 <= col < num_ir):
            raise ValueError(f"pairs holds ({row}, {col}), outside the {num_vis} vis x {num_ir} ir clusters")
        if row in seen_rows or partner[col] >= 0:
            raise ValueError(f"pairs must be one-to-one, but ({row}, {col}) reuses a vis or ir cluster")
        seen_rows.add(row)
        partner[col] = row
    return partner


def _map_labels(labels: np.ndarray, cluster_ids: np.ndarray, joint: np.ndarray, name: str, ids_name: str
                ) -> np.ndarray:
    """labels [N] -> joint[k] where cluster_ids[k] == label; -1 stays -1."""
    out = np.full(len(labels), -1, dtype=np.int64)
    clustered = labels >= 0
    order = np.argsort(cluster_ids)
    sorted_ids, wanted = cluster_ids[order], labels[clustered]
    position = np.minimum(np.searchsorted(sorted_ids, wanted), max(len(sorted_ids) - 1, 0))
    found = sorted_ids[position] == wanted if len(sorted_ids) else np.zeros(len(wanted), dtype=bool)
    if not found.all():
        raise ValueError(f"{name} holds cluster ids missing from {ids_name}: {sorted(set(wanted[~found].tolist()))[:5]}")
    out[clustered] = joint[order][position]
    return out


def _as_matrix(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    matrix = np.array(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be [C, D], got shape {matrix.shape}")
    return matrix
