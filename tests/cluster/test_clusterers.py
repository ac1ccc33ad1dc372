"""cluster_labels (DBSCAN / k-means / spectral / infomap), the cluster report and relabelling."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from reid.cluster.clusterers import (ClusterReport, cluster_labels, distance_graph, relabel_consecutive,
                                     summarize_clusters)


def blobs(num_blobs=5, per_blob=12, dim=32, spread=0.05, num_isolated=0, seed=0):
    """L2-normalised Gaussian blobs around random unit centres, then isolated random points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_blobs, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.repeat(centres, per_blob, axis=0) + spread * rng.normal(size=(num_blobs * per_blob, dim))
    points = np.concatenate([points, rng.normal(size=(num_isolated, dim))])
    labels = np.concatenate([np.repeat(np.arange(num_blobs), per_blob), np.full(num_isolated, -1)])
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32), labels


def knn_cosine_distance(features, k=20):
    """csr [N, N] keeping each row's k nearest cosine distances (itself included)."""
    distance = np.clip(1.0 - features @ features.T, 0.0, 2.0).astype(np.float64)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(len(features)), k)
    return sparse.csr_matrix((distance[rows, nearest.ravel()], (rows, nearest.ravel())), shape=distance.shape)


def dense_with_ones(graph):
    """The dense equivalent of a sparse distance graph: unstored pairs at 1, the diagonal at 0."""
    dense = np.ones(graph.shape)
    coo = graph.tocoo()
    dense[coo.row, coo.col] = coo.data
    np.fill_diagonal(dense, 0.0)
    return dense


# --------------------------------------------------------------------------- dbscan


def test_dbscan_finds_the_blobs_and_marks_isolated_points():
    features, truth = blobs(num_isolated=3)
    labels = cluster_labels(knn_cosine_distance(features), eps=0.3, min_samples=4)
    assert labels.dtype == np.int64 and labels.shape == (63,)
    assert adjusted_rand_score(truth[:60], labels[:60]) == 1.0
    assert set(labels[:60].tolist()) == {0, 1, 2, 3, 4}
    assert labels[60:].tolist() == [-1, -1, -1]


@pytest.mark.parametrize("eps,min_samples", [(0.05, 3), (0.1, 4), (0.2, 4), (0.3, 6), (0.4, 2), (0.6, 8)])
def test_dbscan_on_sparse_equals_dbscan_on_dense_with_unstored_at_one(eps, min_samples):
    rng = np.random.default_rng(1)  # 8 clumps of different spreads and 20 scattered points
    centres, spreads = rng.normal(size=(8, 16)), rng.uniform(0.1, 0.5, size=8)
    features = np.concatenate([centre + spread * rng.normal(size=(12, 16)) for centre, spread in zip(centres, spreads)]
                              + [1.5 * rng.normal(size=(20, 16))])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    graph = knn_cosine_distance(features, k=8)  # asymmetric: i in j's 8 nearest does not imply the reverse
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dense_with_ones(graph))
    labels = cluster_labels(graph, eps=eps, min_samples=min_samples)
    assert len(set(expected.tolist()) - {-1}) >= 2 and (expected == -1).any()  # a non-trivial case
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(cluster_labels(dense_with_ones(graph), eps=eps, min_samples=min_samples), expected)
    dense_tensor = torch.from_numpy(dense_with_ones(graph)).float()
    np.testing.assert_array_equal(cluster_labels(dense_tensor, eps=eps, min_samples=min_samples), expected)


def test_explicitly_stored_zero_distance_makes_neighbours():
    # samples 0 and 1 are duplicates (distance 0 stored explicitly), sample 2 is far from both;
    # with min_samples=2 the pair is a cluster only if the stored zeros count as neighbours
    data = np.array([0.0, 0.0, 0.0, 0.0, 0.9, 0.9])
    indices = np.array([0, 1, 0, 1, 0, 1])
    indptr = np.array([0, 2, 4, 6])
    graph = sparse.csr_matrix((data, indices, indptr), shape=(3, 3))
    assert graph.nnz == 6  # the explicit zeros are stored
    labels = cluster_labels(graph, eps=0.1, min_samples=2)
    assert labels.tolist() == [0, 0, -1]
    assert graph.nnz == 6 and graph.data.tolist() == data.tolist()  # the input is left alone
    # the same when the diagonal is not stored and only the zero pair is
    off_diagonal = sparse.csr_matrix((np.array([0.0, 0.0]), np.array([1, 0]), np.array([0, 1, 2, 2])), shape=(3, 3))
    assert cluster_labels(off_diagonal, eps=0.1, min_samples=2).tolist() == [0, 0, -1]


def test_identical_features_end_up_in_one_cluster():
    features, _ = blobs(num_blobs=2, per_blob=1, num_isolated=0)
    features = np.concatenate([features[:1], features[:1], features[1:]])  # 0 and 1 identical
    graph = knn_cosine_distance(features, k=3)
    assert cluster_labels(graph, eps=0.05, min_samples=2).tolist() == [0, 0, -1]


def test_distance_graph_keeps_zeros_and_stores_the_diagonal():
    graph = distance_graph(sparse.csr_matrix((np.array([0.0, 0.4, 1.2, -1e-9]), np.array([1, 2, 0, 0]),
                                              np.array([0, 2, 3, 4])), shape=(3, 3)))
    dense = graph.toarray()
    assert graph.nnz == 6  # 3 diagonal zeros, (0,1)=0, (0,2)=0.4, (2,0)=-1e-9 clipped; 1.2 dropped
    assert dense[0, 2] == pytest.approx(0.4) and dense[2, 0] == 0.0 and dense[1, 0] == 0.0
    assert graph.diagonal().tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("eps", [1.0, 1.5, 0.0, -0.1])
def test_dbscan_eps_outside_zero_one_is_an_error(eps):
    features, _ = blobs()
    with pytest.raises(ValueError, match="eps"):
        cluster_labels(knn_cosine_distance(features), eps=eps)


def test_distance_must_be_square():
    with pytest.raises(ValueError, match="square"):
        cluster_labels(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="distance is required"):
        cluster_labels(None, method="dbscan")


# --------------------------------------------------------------------------- kmeans, spectral, infomap


def test_kmeans_recovers_the_blobs_from_numpy_and_torch():
    features, truth = blobs(seed=3)
    for given in (features, torch.from_numpy(features)):
        labels = cluster_labels(None, method="kmeans", features=given, num_clusters=5, seed=0)
        assert labels.dtype == np.int64 and (labels >= 0).all()
        assert adjusted_rand_score(truth, labels) == 1.0


def test_kmeans_needs_features_and_num_clusters():
    features, _ = blobs()
    with pytest.raises(ValueError, match="features"):
        cluster_labels(None, method="kmeans", num_clusters=5)
    with pytest.raises(ValueError, match="num_clusters"):
        cluster_labels(None, method="kmeans", features=features)
    with pytest.raises(ValueError, match="num_clusters"):
        cluster_labels(None, method="kmeans", features=features, num_clusters=61)


def test_spectral_recovers_the_blobs():
    features, truth = blobs(seed=4)
    labels = cluster_labels(knn_cosine_distance(features, k=10), method="spectral", num_clusters=5, seed=0)
    assert labels.dtype == np.int64 and (labels >= 0).all()
    assert adjusted_rand_score(truth, labels) == 1.0
    with pytest.raises(ValueError, match="num_clusters"):
        cluster_labels(knn_cosine_distance(features), method="spectral")


def test_infomap_recovers_the_blobs_and_isolates_outliers():
    pytest.importorskip("infomap")
    features, truth = blobs(num_isolated=3, seed=5)
    graph = knn_cosine_distance(features, k=20)
    graph.data[graph.data > 0.5] = 1.0  # the far pairs carry no affinity, as k-reciprocal Jaccard would do
    labels = cluster_labels(graph, method="infomap", seed=0)
    assert adjusted_rand_score(truth[:60], labels[:60]) == 1.0
    assert set(labels[:60].tolist()) == {0, 1, 2, 3, 4}
    assert labels[60:].tolist() == [-1, -1, -1]


def test_infomap_absent_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "infomap", None)  # makes `import infomap` fail
    features, _ = blobs()
    with pytest.raises(ValueError, match="infomap.*not installed.*dbscan, kmeans, spectral"):
        cluster_labels(knn_cosine_distance(features), method="infomap")


def test_unknown_method_lists_the_methods():
    with pytest.raises(ValueError, match="dbscan, kmeans, spectral, infomap"):
        cluster_labels(np.zeros((3, 3)), method="optics")


# --------------------------------------------------------------------------- report and relabelling


def test_summarize_clusters_counts_outliers_sizes_and_mixed_clusters():
    labels = np.array([0, 0, 0, 3, 3, -1, 7, 7, 7, 7, -1, 9])
    modalities = ["vis", "ir", "vis", "vis", "vis", "ir", "ir", "vis", "ir", "ir", "vis", "ir"]
    report = summarize_clusters(labels, modalities)
    assert isinstance(report, ClusterReport)
    assert (report.num_samples, report.num_clusters, report.num_outliers) == (12, 4, 2)
    assert report.sizes == (4, 3, 2, 1)
    assert report.size_histogram == {1: 1, 2: 1, 3: 1, 4: 1}
    assert report.mixed_clusters == 2  # clusters 0 and 7; 3 is all vis, 9 all ir
    assert report.mixed_share == 0.5
    assert report.as_dict() == {"num_samples": 12, "num_clusters": 4, "num_outliers": 2, "sizes": [4, 3, 2, 1],
                                "size_histogram": {1: 1, 2: 1, 3: 1, 4: 1}, "mixed_clusters": 2,
                                "mixed_share": 0.5}
    is_ir = torch.tensor([m == "ir" for m in modalities])
    assert summarize_clusters(torch.from_numpy(labels), is_ir) == report


def test_summarize_clusters_without_modalities_and_errors():
    report = summarize_clusters([-1, -1, 2, 2])
    assert (report.num_clusters, report.num_outliers, report.sizes) == (1, 2, (2,))
    assert report.mixed_clusters is None and report.mixed_share is None
    assert summarize_clusters(np.array([], dtype=np.int64)).num_clusters == 0
    with pytest.raises(ValueError, match="modalities"):
        summarize_clusters([0, 1], ["vis", "rgb"])
    with pytest.raises(ValueError, match="modalities"):
        summarize_clusters([0, 1], ["vis"])
    with pytest.raises(ValueError, match="labels"):
        summarize_clusters([0, -2])


def test_cluster_labels_logs_the_report(caplog):
    features, _ = blobs(num_isolated=3)
    modalities = ["vis", "ir"] * 30 + ["vis"] * 3
    with caplog.at_level(logging.INFO, logger="reid.cluster.clusterers"):
        cluster_labels(knn_cosine_distance(features), eps=0.3, modalities=modalities)
    assert "dbscan clustering: 5 clusters, 3/63 outliers" in caplog.text
    assert "5 mixed vis+ir (100.0%)" in caplog.text


def test_relabel_consecutive_keeps_outliers():
    labels = relabel_consecutive(np.array([5, 5, -1, 2, 9, 2]))
    assert labels.dtype == np.int64
    assert labels.tolist() == [1, 1, -1, 0, 2, 0]
    assert relabel_consecutive(torch.tensor([-1, -1])).tolist() == [-1, -1]


def test_distance_graph_reduces_duplicate_pairs_to_their_minimum():
    """A sparse input may store a pair twice (COO, or an unsummed csr): the graph keeps one entry, the smaller
    distance, and never their sum."""
    rows, cols = np.array([0, 0, 2, 2, 1, 0]), np.array([1, 1, 1, 1, 0, 2])
    values = np.array([0.7, 0.3, 0.5, 0.9, 0.2, 0.6])
    for distance in (sparse.coo_matrix((values, (rows, cols)), shape=(3, 3)),
                     sparse.csr_matrix((values[[0, 1, 5, 4, 2, 3]], cols[[0, 1, 5, 4, 2, 3]], [0, 3, 4, 6]),
                                       shape=(3, 3))):
        graph = distance_graph(distance)
        assert graph.nnz == 3 + 4  # the diagonal, (0,1), (0,2), (1,0), (2,1)
        dense = graph.toarray()
        assert dense[0, 1] == pytest.approx(0.3) and dense[2, 1] == pytest.approx(0.5)
        assert dense[0, 2] == pytest.approx(0.6) and dense[1, 0] == pytest.approx(0.2)
        assert graph.indices[graph.indptr[0]:graph.indptr[1]].tolist() == [0, 1, 2]  # row 0 by distance
