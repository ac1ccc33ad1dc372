"""The sparse Jaccard distance against a dense, per-row transcription of the cluster-contrast recipe."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reid.cluster.jaccard import jaccard_distance, pairwise_jaccard
from reid.cluster.neighbors import knn


def dense_reference(features: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """cluster-contrast's compute_jaccard_distance, written out densely with per-row loops."""
    num = len(features)
    similarity = features @ features.T
    initial_rank = np.argsort(-similarity, axis=1, kind="stable")[:, :k1]  # k1 searched, itself included

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
    if k2 != 1:
        weights = np.stack([weights[initial_rank[i, :k2]].mean(axis=0) for i in range(num)])
    jaccard = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        shared = np.minimum(weights[i][None, :], weights).sum(axis=1)
        jaccard[i] = 1 - shared / (2 - shared)
    jaccard[jaccard < 0] = 0
    return jaccard


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
