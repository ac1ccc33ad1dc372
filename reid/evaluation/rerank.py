"""cluster-contrast's k-reciprocal re-ranking of query-gallery distances, after Zhong et al. (CVPR 2017).

The Jaccard term is the clustering's sparse `reid.cluster.jaccard_distance` (cluster-contrast's
`compute_jaccard_distance`), mixed with the original distance as Zhong et al.'s `re_ranking` does. It differs
from Zhong's code in two ways: the k1 ranked neighbours count the image itself (Zhong: k1 + 1 columns, the
image and k1 others), and the softmax weights use the squared distances 2 - 2 x.y as they are (Zhong: scaled
by the row's largest). `tests/evaluation/test_rerank.py` checks it against a transcription of Zhong's
`re_ranking` with these two changes, and that each change alters the distances.
"""
from __future__ import annotations

import numpy as np
import torch

from reid.cluster.jaccard import jaccard_distance
from reid.cluster.neighbors import l2_normalize


def rerank_distances(query_features: torch.Tensor, gallery_features: torch.Tensor, *, k1: int = 20, k2: int = 6,
                     lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked distances [Q, G] = (1 - lambda) * Jaccard + lambda * original distance (see the module docstring).

    query_features: [Q, D], gallery_features: [G, D] (L2-normalised here). The Jaccard distance is
    computed over queries and gallery together (`reid.cluster.jaccard_distance`: k1 neighbours, the
    image itself among them; softmax weights on unscaled squared distances; k2 query expansion); the
    original distance is the squared Euclidean distance divided by the query's largest squared distance
    to any image (query or gallery), as in Zhong et al.'s code (a per-row scaling, so lambda = 1 keeps
    the plain ranking). Off by default in the protocols, as in published tables.
    """
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value}")
    query, gallery = l2_normalize(query_features).cpu(), l2_normalize(gallery_features).cpu()
    num_query = len(query)
    everything = torch.cat([query, gallery])
    squared = (2.0 - 2.0 * query @ everything.T).clamp(min=0.0)  # [Q, Q + G]
    original = (squared / squared.max(dim=1, keepdim=True).values.clamp(min=1e-12))[:, num_query:].double().numpy()
    block = jaccard_distance(everything, k1=k1, k2=k2)[:num_query, num_query:].tocoo()
    jaccard = np.ones((num_query, len(gallery)))
    jaccard[block.row, block.col] = block.data
    return (1.0 - lambda_value) * jaccard + lambda_value * original
