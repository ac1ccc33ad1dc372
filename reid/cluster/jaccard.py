"""k-reciprocal Jaccard distance (Zhong et al. 2017) as cluster-contrast and SpCL compute it,
stored sparse: memory grows with N times the neighbourhood sizes, never N x N.

The recipe, for features x (L2-normalised first, unless `normalise=False`: then as given, as the references run it
on their flip-averaged clustering features) and `initial_rank` = the k1 nearest neighbours of each image by
Euclidean distance (equivalently, for unit rows, by inner product), the image itself among them:
1. R(i, k): the k-reciprocal neighbours of i: j in the first k+1 columns of i's ranking whose own
   first k+1 columns contain i (columns beyond the k1 searched simply do not exist).
2. Expansion: start from R(i, k1); for each candidate c in it, add R(c, round(k1/2)) when more than
   2/3 of that set lies in R(i, k1).
3. V[i, j] = softmax over the expansion set of -(2 - 2 x_i.x_j).
4. Query expansion: V[i] <- mean of V over i's k2 nearest neighbours; with `is_ir` given, PCLHD's modality-invariant
   expansion (`compute_modal_invariant_jaccard_distance`): the mean of the infrared neighbours' rows and the mean
   of the visible neighbours' rows are averaged (one of them alone when the other modality has no neighbour).
5. Jaccard: d(i, j) = 1 - m / (2 - m) with m = sum_k min(V[i, k], V[j, k]); negatives clipped to 0.

Every step is a sparse matrix operation or a batched numpy/torch operation; none loops over rows
in Python. Pairs with m = 0 (distance exactly 1) are not stored.
"""
from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from .neighbors import knn, l2_normalize

logger = logging.getLogger(__name__)

PAIR_BUDGET = 4_000_000  # (i, k, j) triples handled at once in the Jaccard step
MAX_BLOCK_ROWS = 512  # rows of the dense accumulation block in the Jaccard step


def jaccard_distance(features: torch.Tensor | np.ndarray, k1: int = 30, k2: int = 6, *,
                     max_distance: float | None = None, is_ir: np.ndarray | None = None,
                     normalise: bool = True) -> sp.csr_matrix:
    """k-reciprocal Jaccard distances between all rows of `features`.

    features: [N, D] (CUDA tensors search neighbours on the GPU). normalise: L2-normalise the rows first; False:
    use them as given, neighbours by L2 distance and weights from their raw dot products, as cluster-contrast's
    `compute_jaccard_distance` (IndexFlatL2) does on the references' clustering features, whose norms are
    slightly below 1.
    k1: neighbourhood size (the image itself counts as one of the k1); k2: query-expansion size.
    max_distance: keep only pairs with distance <= max_distance (None: keep every pair below 1).
    is_ir: [N] bool, the modality of each row: query expansion balances the two modalities (step 4, PCLHD).
    Returns a csr_matrix [N, N] float32 of distances in [0, 1) for the stored pairs (the diagonal
    included); pairs not stored are at distance 1. Equal, up to float32 rounding, to the dense
    implementation of cluster-contrast / SpCL on the same inputs.
    """
    if k1 < 1 or k2 < 1:
        raise ValueError(f"jaccard_distance: k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    x = l2_normalize(features) if normalise else torch.as_tensor(features).float()
    num = x.shape[0]
    searched = min(k1, num)
    _, initial_rank = knn(x, searched, metric="ip" if normalise else "l2")
    reciprocal = reciprocal_neighbours(initial_rank, min(k1 + 1, searched))
    reciprocal_half = reciprocal_neighbours(initial_rank, min(int(np.around(k1 / 2)) + 1, searched))
    expansion = expand_neighbourhoods(reciprocal, reciprocal_half)
    weights = softmax_weights(x, expansion)
    if k2 != 1:
        neighbours = initial_rank[:, :min(k2, searched)]
        weights = query_expansion(weights, neighbours, None if is_ir is None else np.asarray(is_ir, dtype=bool))
    distance = pairwise_jaccard(weights, max_distance=max_distance)
    logger.debug("jaccard_distance: N=%d, %.1f stored pairs per row", num, distance.nnz / max(num, 1))
    return distance


def reciprocal_neighbours(initial_rank: np.ndarray, width: int, batch_rows: int = 4096) -> sp.csr_matrix:
    """R(i): j among the first `width` columns of row i whose first `width` columns contain i.

    initial_rank: [N, K] neighbour indices, nearest first. Returns a 0/1 csr_matrix [N, N] float32.
    """
    forward = initial_rank[:, :width]
    num = forward.shape[0]
    is_reciprocal = np.empty(forward.shape, dtype=bool)
    for start in range(0, num, batch_rows):
        rows = forward[start:start + batch_rows]
        backward = forward[rows]  # [b, width, width]: the rankings of i's neighbours
        own_index = np.arange(start, start + rows.shape[0])[:, None, None]
        is_reciprocal[start:start + batch_rows] = (backward == own_index).any(axis=2)
    row_ids = np.broadcast_to(np.arange(num)[:, None], forward.shape)
    return _binary_csr(row_ids[is_reciprocal], forward[is_reciprocal], num)


def expand_neighbourhoods(reciprocal: sp.csr_matrix, reciprocal_half: sp.csr_matrix) -> sp.csr_matrix:
    """R(i, k1) united with every R(c, k1/2), c in R(i, k1), of which more than 2/3 lies in R(i, k1).

    Both inputs are 0/1 csr_matrix [N, N]; returns the 0/1 pattern of the expanded sets.
    """
    half_sizes = np.diff(reciprocal_half.indptr)
    overlap = (reciprocal @ reciprocal_half.T).multiply(reciprocal).tocoo()  # |R(i) & R_half(c)| for c in R(i)
    selected = overlap.data > 2 / 3 * half_sizes[overlap.col]
    num = reciprocal.shape[0]
    chosen = _binary_csr(overlap.row[selected], overlap.col[selected], num)
    expanded = (reciprocal + chosen @ reciprocal_half).tocsr()
    expanded.data[:] = 1.0
    expanded.sort_indices()
    return expanded


def softmax_weights(x: torch.Tensor, pattern: sp.csr_matrix, chunk: int = 8192) -> sp.csr_matrix:
    """V[i, j] = softmax over j in row i's pattern of -(2 - 2 x_i.x_j).

    x: [N, D] (normally L2-normalised); pattern: 0/1 csr_matrix [N, N]. Returns csr_matrix float32, rows sum to 1.
    """
    rows = torch.from_numpy(np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr)))
    cols = torch.from_numpy(pattern.indices.astype(np.int64))
    x_cpu = x.detach().cpu()
    logits = torch.empty(len(cols), dtype=torch.float32)
    for start in range(0, len(cols), chunk):
        r, c = rows[start:start + chunk], cols[start:start + chunk]
        logits[start:start + chunk] = -(2 - 2 * (x_cpu[r] * x_cpu[c]).sum(dim=1))
    num = pattern.shape[0]
    row_max = torch.full((num,), -torch.inf).scatter_reduce(0, rows, logits, reduce="amax")
    exp = torch.exp(logits - row_max[rows])
    row_sum = torch.zeros(num).index_add_(0, rows, exp)
    values = (exp / row_sum[rows]).numpy()
    return sp.csr_matrix((values, pattern.indices.copy(), pattern.indptr.copy()), shape=pattern.shape)


def query_expansion(weights: sp.csr_matrix, neighbours: np.ndarray, is_ir: np.ndarray | None = None) -> sp.csr_matrix:
    """V[i] <- mean of V[j] over j in neighbours[i] [N, k2]; with is_ir [N], the average of the infrared
    neighbours' mean and the visible neighbours' mean (the one present when a modality has none). csr float32."""
    num, k2 = neighbours.shape
    share = np.full(neighbours.shape, 1.0 / k2)
    if is_ir is not None:
        ir_neighbour = is_ir[neighbours]
        num_ir = ir_neighbour.sum(axis=1, keepdims=True)
        groups = (num_ir > 0).astype(np.int64) + (num_ir < k2)  # modalities present among the neighbours
        share = np.where(ir_neighbour, 1.0 / np.maximum(num_ir, 1), 1.0 / np.maximum(k2 - num_ir, 1)) / groups
    averaging = sp.csr_matrix((share.ravel().astype(np.float32), (np.repeat(np.arange(num), k2), neighbours.ravel())),
                              shape=(num, num))  # duplicates (none in a neighbour list) would add up
    expanded = (averaging @ weights).tocsr()
    expanded.sort_indices()
    return expanded


def pairwise_jaccard(weights: sp.csr_matrix, *, max_distance: float | None = None) -> sp.csr_matrix:
    """d(i, j) = 1 - m / (2 - m), m = sum_k min(V[i, k], V[j, k]), for every pair sharing a k.

    weights: csr_matrix [N, N], non-negative rows summing to 1. Works in batches of rows: each
    nonzero V[i, k] is paired with the nonzeros of column k, and the minima are summed into a dense
    [rows, N] block with `np.bincount`. Returns csr_matrix [N, N] float32 (diagonal stored).
    """
    num = weights.shape[0]
    by_column = weights.tocsc()
    column_sizes = np.diff(by_column.indptr)
    pairs_per_row = np.add.reduceat(column_sizes[weights.indices], weights.indptr[:-1]) \
        if weights.nnz else np.zeros(num, dtype=np.int64)
    pairs_per_row[np.diff(weights.indptr) == 0] = 0  # reduceat repeats a value for empty rows
    blocks = []
    for start, stop in _row_batches(pairs_per_row, PAIR_BUDGET, MAX_BLOCK_ROWS):
        overlap = _overlap_block(weights, by_column, start, stop)
        local_rows, cols = np.nonzero(overlap)
        shared = overlap[local_rows, cols]
        distances = np.maximum(1.0 - shared / (2.0 - shared), 0.0)
        if max_distance is not None:
            keep = distances <= max_distance
            local_rows, cols, distances = local_rows[keep], cols[keep], distances[keep]
        blocks.append((local_rows + start, cols, distances.astype(np.float32)))
    rows, cols, values = (np.concatenate(parts) for parts in zip(*blocks)) if blocks else ([], [], [])
    return sp.csr_matrix((values, (rows, cols)), shape=(num, num), dtype=np.float32)


def _overlap_block(weights: sp.csr_matrix, by_column: sp.csc_matrix, start: int, stop: int) -> np.ndarray:
    """m[i, j] = sum_k min(V[i, k], V[j, k]) for rows start..stop-1: dense [stop - start, N] float64."""
    num = weights.shape[0]
    lo, hi = weights.indptr[start], weights.indptr[stop]
    ks, v_ik = weights.indices[lo:hi], weights.data[lo:hi]
    local_rows = np.repeat(np.arange(stop - start), np.diff(weights.indptr[start:stop + 1]))
    column_starts = by_column.indptr[ks]
    counts = by_column.indptr[ks + 1] - column_starts
    positions = _expand_ranges(column_starts, counts)
    minima = np.minimum(np.repeat(v_ik, counts), by_column.data[positions])
    flat = np.repeat(local_rows, counts) * num + by_column.indices[positions]
    return np.bincount(flat, weights=minima, minlength=(stop - start) * num).reshape(stop - start, num)


def _expand_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    total = int(counts.sum())
    offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
    return offsets + np.arange(total)


def _row_batches(pairs_per_row: np.ndarray, budget: int, max_rows: int):
    """Split rows into consecutive batches of at most `max_rows` rows and about `budget` pairs."""
    num = len(pairs_per_row)
    start = 0
    cumulative = np.cumsum(pairs_per_row)
    while start < num:
        already = cumulative[start - 1] if start else 0
        stop = int(np.searchsorted(cumulative, already + budget, side="right"))
        stop = min(max(stop, start + 1), start + max_rows, num)
        yield start, stop
        start = stop


def _binary_csr(rows: np.ndarray, cols: np.ndarray, num: int) -> sp.csr_matrix:
    """A 0/1 float32 csr_matrix [num, num] with ones at (rows, cols)."""
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(num, num))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
