"""The sparse Jaccard distance against a dense, per-row transcription of the cluster-contrast recipe
(clustercontrast/utils/faiss_rerank.py `compute_jaccard_distance`), and, with `is_ir`, of PCLHD's
`compute_modal_invariant_jaccard_distance` (shijiangming1/PCLHD clustercontrast/utils/faiss_rerank.py:126-245: the
same recipe with the query expansion of lines 190-218, the infrared and visible neighbours' means averaged)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reid.cluster.jaccard import jaccard_distance, pairwise_jaccard
from reid.cluster.neighbors import _knn_torch, knn


def dense_reference(features: np.ndarray, k1: int, k2: int, is_ir: np.ndarray | None = None) -> np.ndarray:
    """cluster-contrast's compute_jaccard_distance, written out densely with per-row loops; with is_ir, PCLHD's
    compute_modal_invariant_jaccard_distance (its modality read from the file names, as there). Neighbours by
    squared L2 distance (its faiss IndexFlatL2), weights from the raw dot products."""
    num = len(features)
    squared = (features.astype(np.float64) ** 2).sum(axis=1)
    distance = squared[:, None] + squared[None, :] - 2 * features.astype(np.float64) @ features.T.astype(np.float64)
    initial_rank = np.argsort(distance, axis=1, kind="stable")[:, :k1]  # k1 searched, itself included

    def k_reciprocal(i: int, k: int) -> np.ndarray:
        forward = initial_rank[i, :k + 1]
        backward = initial_rank[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    half = int(np.around(k1 / 2))
    nn_k1 = [k_reciprocal(i, k1) for i in range(num)]
    nn_half = [k_reciprocal(i, half) for i in range(num)]
    weights = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        expansion = nn_k1[i]
        for candidate in nn_k1[i]:
            candidate_set = nn_half[candidate]
            if len(np.intersect1d(candidate_set, nn_k1[i])) > 2 / 3 * len(candidate_set):
                expansion = np.append(expansion, candidate_set)
        expansion = np.unique(expansion)
        dist = 2 - 2 * torch.from_numpy(features[i:i + 1]) @ torch.from_numpy(features[expansion]).T
        weights[i, expansion] = torch.softmax(-dist, dim=1).view(-1).numpy()
    if k2 != 1 and is_ir is None:
        weights = np.stack([weights[initial_rank[i, :k2]].mean(axis=0) for i in range(num)])
    elif k2 != 1:
        weights = modal_invariant_expansion(weights, initial_rank, k2,
                                            ["x/ir_modify/a.jpg" if ir else "x/rgb_modify/a.jpg" for ir in is_ir])
    jaccard = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        shared = np.minimum(weights[i][None, :], weights).sum(axis=1)
        jaccard[i] = 1 - shared / (2 - shared)
    jaccard[jaccard < 0] = 0
    return jaccard


def modal_invariant_expansion(V: np.ndarray, initial_rank: np.ndarray, k2: int, all_file_name: list[str]):
    """PCLHD faiss_rerank.py:190-218: per row, the mean of its infrared neighbours' rows and the mean of its visible
    neighbours' rows, averaged (the one there is when a modality has no neighbour among the k2)."""
    V_qe = np.zeros_like(V, dtype=np.float32)
    for i in range(len(V)):
        feas_NIR_temp = []
        feas_VIS_temp = []
        for ii in initial_rank[i, :k2]:
            if 'ir_modify' in all_file_name[ii]:
                feas_NIR_temp.append(V[ii, :])
            elif 'rgb_modify' in all_file_name[ii]:
                feas_VIS_temp.append(V[ii, :])
        feas_VIS_temp = np.array(feas_VIS_temp)
        feas_NIR_temp = np.array(feas_NIR_temp)
        if len(feas_VIS_temp) == 0:
            V_qe[i, :] = np.mean(feas_NIR_temp, axis=0)
        elif len(feas_NIR_temp) == 0:
            V_qe[i, :] = np.mean(feas_VIS_temp, axis=0)
        else:
            V_qe[i, :] = np.mean([np.mean(feas_NIR_temp, axis=0), np.mean(feas_VIS_temp, axis=0)], axis=0)
    return V_qe


def clustered_features(num_ids: int, per_id: int, dim: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim))
    features = np.repeat(centres, per_id, axis=0) + noise * rng.standard_normal((num_ids * per_id, dim))
    return (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)


def as_dense(distance: sp.csr_matrix) -> np.ndarray:
    """Unstored pairs are at distance 1."""
    dense = np.ones(distance.shape, dtype=np.float32)
    coo = distance.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


@pytest.mark.parametrize("k1, k2, noise", [(30, 6, 0.8), (20, 6, 1.2), (7, 1, 0.6), (5, 3, 2.0)])
def test_sparse_equals_dense_reference(k1, k2, noise):
    features = clustered_features(num_ids=12, per_id=15, dim=24, noise=noise, seed=k1)
    sparse = jaccard_distance(features, k1=k1, k2=k2)
    assert isinstance(sparse, sp.csr_matrix) and sparse.dtype == np.float32
    reference = dense_reference(features, k1, k2)
    np.testing.assert_allclose(as_dense(sparse), reference, atol=2e-6)
    # every pair below distance 1 in the reference is stored, and the diagonal is stored explicitly
    assert (as_dense(sparse) < 1).sum() == (reference < 1 - 1e-6).sum()
    coo = sparse.tocoo()
    stored_diagonal = coo.row[coo.row == coo.col]
    np.testing.assert_array_equal(np.sort(stored_diagonal), np.arange(len(features)))  # explicit, even when 0
    assert np.all(sparse.diagonal() <= 1e-6)


@pytest.mark.parametrize("k1, k2", [(30, 6), (7, 1), (12, 4)])
def test_features_as_given_equal_the_reference_on_its_clustering_features(k1, k2):
    """normalise=False, as the trainer clusters: rows of norm 0.85..1 (flip-averaged unit features are shorter than 1)
    ranked by L2 distance and weighted by their raw dot products, as cluster-contrast's code does; normalising them
    first gives other distances."""
    features = clustered_features(num_ids=12, per_id=15, dim=24, noise=1.0, seed=k1)
    features = features * np.random.default_rng(k2).uniform(0.85, 1.0, (len(features), 1)).astype(np.float32)
    reference = dense_reference(features, k1, k2)
    np.testing.assert_allclose(as_dense(jaccard_distance(features, k1=k1, k2=k2, normalise=False)), reference,
                               atol=2e-6)
    assert np.abs(as_dense(jaccard_distance(features, k1=k1, k2=k2)) - reference).max() > 1e-3


def test_knn_by_l2_distance_ranks_by_distance_not_inner_product():
    features = np.array([[1.0, 0.0], [2.0, 0.0], [0.9, 0.3]], dtype=np.float32)
    assert knn(features, 3, metric="ip")[1][0].tolist() == [1, 0, 2]  # the longest vector has the largest product
    distances, order = knn(features, 3, metric="l2")
    assert order[0].tolist() == [0, 2, 1]
    np.testing.assert_allclose(distances[0], [0.0, 0.1, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="metric"):
        knn(features, 2, metric="cosine")


def bimodal_features(seed: int, noise: float = 0.6, shift: float = 0.5):
    """(features [N, D] unit, is_ir [N]): 10 identities with visible and infrared images (a modality offset
    between them), 2 with infrared images only and 2 with visible images only, rows shuffled."""
    rng = np.random.default_rng(seed)
    dim = 24
    centres = rng.standard_normal((14, dim))
    offset = shift * rng.standard_normal(dim)
    rows, modality = [], []
    for identity in range(14):
        for ir in ([False] * 6 if identity >= 12 else []) + ([True] * 6 if 10 <= identity < 12 else []) + \
                ([False] * 5 + [True] * 4 if identity < 10 else []):
            rows.append(centres[identity] + (offset if ir else 0) + noise * rng.standard_normal(dim))
            modality.append(ir)
    order = rng.permutation(len(rows))
    features = np.asarray(rows)[order]
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    return features, np.asarray(modality)[order]


@pytest.mark.parametrize("k1, k2, seed", [(20, 6, 0), (12, 5, 1), (30, 8, 2), (7, 3, 3)])
def test_modal_invariant_expansion_equals_pclhd_dense_reference(k1, k2, seed):
    features, is_ir = bimodal_features(seed)
    sparse = jaccard_distance(features, k1=k1, k2=k2, is_ir=is_ir)
    reference = dense_reference(features, k1, k2, is_ir=is_ir)
    np.testing.assert_allclose(as_dense(sparse), reference, atol=2e-6)
    assert (as_dense(sparse) < 1).sum() == (reference < 1 - 1e-6).sum()
    # the neighbourhoods hold both kinds: one modality only, and both modalities in unequal numbers
    neighbours = np.argsort(-(features @ features.T), axis=1, kind="stable")[:, :k2]
    infrared = is_ir[neighbours].sum(axis=1)
    assert np.any(infrared == 0) and np.any(infrared == k2)
    assert np.any((infrared > 0) & (infrared < k2) & (2 * infrared != k2))
    # and the balanced mean is not the plain one
    assert np.abs(reference - dense_reference(features, k1, k2)).max() > 1e-3


def test_modal_invariant_with_one_modality_is_the_plain_distance():
    features = clustered_features(num_ids=6, per_id=8, dim=16, noise=0.8, seed=4)
    for modality in (np.zeros(len(features), bool), np.ones(len(features), bool)):
        np.testing.assert_allclose(as_dense(jaccard_distance(features, k1=10, k2=4, is_ir=modality)),
                                   as_dense(jaccard_distance(features, k1=10, k2=4)), atol=1e-6)


def test_storage_grows_with_neighbourhoods_not_n_squared():
    features = clustered_features(num_ids=60, per_id=10, dim=16, noise=0.7, seed=0)
    distance = jaccard_distance(features, k1=10, k2=3)
    assert distance.nnz < 0.25 * distance.shape[0] ** 2
    np.testing.assert_allclose(as_dense(distance), as_dense(distance).T, atol=1e-6)


def test_max_distance_keeps_only_close_pairs():
    features = clustered_features(num_ids=8, per_id=10, dim=16, noise=0.9, seed=1)
    full = jaccard_distance(features, k1=12, k2=4)
    close = jaccard_distance(features, k1=12, k2=4, max_distance=0.6)
    assert close.nnz < full.nnz and close.max() <= 0.6
    dense_full, dense_close = as_dense(full), as_dense(close)
    np.testing.assert_array_equal(dense_close[dense_full <= 0.6], dense_full[dense_full <= 0.6])


def test_fewer_images_than_k1_and_duplicates():
    features = clustered_features(num_ids=2, per_id=4, dim=8, noise=0.3, seed=2)
    features = np.concatenate([features, features[:1]])  # an exact duplicate
    distance = as_dense(jaccard_distance(features, k1=30, k2=6))
    np.testing.assert_allclose(distance, dense_reference(features, min(30, len(features)), 6), atol=2e-6)
    assert distance[0, -1] == pytest.approx(0.0, abs=1e-6)


def test_pairwise_jaccard_by_hand():
    # rows sum to 1; m(0,1) = min(.5,.25) + min(.5,.75) = 1.0 - .25 = .75 -> d = 1 - .75/1.25 = .4
    weights = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32))
    distance = as_dense(pairwise_jaccard(weights))
    assert distance[0, 1] == pytest.approx(0.4) and distance[1, 0] == pytest.approx(0.4)
    assert distance[0, 2] == 1.0 and distance[2, 2] == 0.0


def test_knn_is_exact_and_sorted():
    features = torch.nn.functional.normalize(torch.randn(300, 20, generator=torch.Generator().manual_seed(0)), dim=1)
    sims, idx = knn(features, 7, batch_size=64)
    expected = (features @ features.T).topk(7, dim=1)
    np.testing.assert_array_equal(idx, expected.indices.numpy())
    np.testing.assert_allclose(sims, expected.values.numpy(), atol=1e-5)
    assert np.all(np.diff(sims, axis=1) <= 1e-6) and np.all(idx[:, 0] == np.arange(300))
    with pytest.raises(ValueError, match="k must be"):
        knn(features, 301)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_the_torch_knn_path_equals_faiss(metric):
    """`_knn_torch` (CUDA tensors without faiss GPUs) run on CPU tensors: the same neighbours as faiss's flat index,
    scores within float32 rounding, in batches that do not divide N."""
    features = torch.randn(257, 16, generator=torch.Generator().manual_seed(1))
    if metric == "ip":
        features = torch.nn.functional.normalize(features, dim=1)
    faiss_scores, faiss_indices = knn(features, 9, batch_size=100, metric=metric)
    torch_scores, torch_indices = _knn_torch(features, 9, 100, metric)
    np.testing.assert_array_equal(torch_indices, faiss_indices)
    np.testing.assert_allclose(torch_scores, faiss_scores, rtol=1e-4, atol=1e-4)
    assert torch_indices.dtype == np.int64 and torch_scores.shape == (257, 9)
