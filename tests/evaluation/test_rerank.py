"""Re-ranking against a per-row transcription of Zhong et al.'s `re_ranking`: it is Zhong's formula with the
neighbourhoods and weights of cluster-contrast's `compute_jaccard_distance`, and each of those two differences
changes the distances."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.evaluation import rerank_distances


def zhong_re_ranking(query: np.ndarray, gallery: np.ndarray, k1: int, k2: int, lambda_value: float, *,
                     self_among_k1: bool = False, unscaled_weights: bool = False) -> np.ndarray:
    """Zhong et al.'s re_ranking (the CVPR 2017 authors' Python code, as cluster-contrast ships it in
    clustercontrast/utils/rerank.py) on the Euclidean distances of L2-normalised features, one row at a time:
    [Q, G]. The switches make the choices of cluster-contrast's compute_jaccard_distance (utils/faiss_rerank.py):

    self_among_k1: rank k1 columns, the image itself among them (a k1-nearest search), instead of k1 + 1.
    unscaled_weights: softmax weights on the squared distances 2 - 2 x.y, instead of on the squared distances
    divided by the row's largest.
    """
    features = np.concatenate([query, gallery]).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    num_query, num = len(query), len(features)
    squared = np.maximum(2 - 2 * features @ features.T, 0).astype(np.float32)
    original = (squared / squared.max(axis=0)).T  # each row scaled by its largest (the matrix is symmetric)
    initial_rank = np.argsort(original, axis=1, kind="stable")
    width = k1 if self_among_k1 else k1 + 1
    half_width = int(np.around(k1 / 2)) + 1

    def k_reciprocal(i: int, columns: int) -> np.ndarray:
        forward = initial_rank[i, :columns]
        backward = initial_rank[forward, :columns]
        return forward[np.where(backward == i)[0]]

    weight_distance = squared if unscaled_weights else original
    weights = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        reciprocal = k_reciprocal(i, width)
        expansion = reciprocal
        for candidate in reciprocal:
            candidate_set = k_reciprocal(candidate, half_width)
            if len(np.intersect1d(candidate_set, reciprocal)) > 2 / 3 * len(candidate_set):
                expansion = np.append(expansion, candidate_set)
        expansion = np.unique(expansion)
        weight = np.exp(-weight_distance[i, expansion].astype(np.float64))
        weights[i, expansion] = weight / weight.sum()
    if k2 != 1:
        weights = np.stack([weights[initial_rank[i, :k2]].mean(axis=0) for i in range(num)])
    jaccard = np.zeros((num_query, num))
    for i in range(num_query):
        shared = np.minimum(weights[i][None, :], weights).sum(axis=1)
        jaccard[i] = 1 - shared / (2 - shared)
    final = (1 - lambda_value) * jaccard + lambda_value * original[:num_query]
    return final[:, num_query:]


def noisy_identities(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """20 queries and 60 gallery features [*, 32] of 10 identities with heavy noise."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, 32, generator=generator)
    features = (centres[torch.arange(10).repeat_interleave(8)] + 0.9 * torch.randn(80, 32, generator=generator)).numpy()
    is_query = np.arange(80) % 4 == 0
    return features[is_query], features[~is_query]


@pytest.mark.parametrize("k1, k2, lambda_value", [(20, 6, 0.3), (8, 3, 0.3), (8, 1, 0.0), (5, 2, 0.7)])
def test_equals_zhong_with_cluster_contrast_neighbourhoods_and_weights(k1, k2, lambda_value):
    query, gallery = noisy_identities()
    expected = zhong_re_ranking(query, gallery, k1, k2, lambda_value, self_among_k1=True, unscaled_weights=True)
    reranked = rerank_distances(torch.from_numpy(query), torch.from_numpy(gallery), k1=k1, k2=k2,
                                lambda_value=lambda_value)
    assert reranked.shape == (20, 60)
    np.testing.assert_allclose(reranked, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("self_among_k1, unscaled_weights", [(False, False), (False, True), (True, False)])
def test_each_difference_from_zhong_changes_the_distances(self_among_k1, unscaled_weights):
    query, gallery = noisy_identities()
    zhong_variant = zhong_re_ranking(query, gallery, 20, 6, 0.3, self_among_k1=self_among_k1,
                                     unscaled_weights=unscaled_weights)
    reranked = rerank_distances(torch.from_numpy(query), torch.from_numpy(gallery), k1=20, k2=6, lambda_value=0.3)
    assert np.abs(reranked - zhong_variant).max() > 1e-3
