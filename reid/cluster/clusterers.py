"""Pseudo-label clustering on a sparse pairwise-distance graph (DBSCAN, spectral, infomap) or on
features (k-means), plus the cluster report and label helpers shared by the training loop.

Distance graphs are `scipy.sparse.csr_matrix` [N, N] (e.g. k-reciprocal Jaccard distances): every
stored entry is a distance, pairs not stored are at distance 1, the diagonal is at distance 0.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from scipy.sparse import csgraph

from reid.data.record import MODALITIES

logger = logging.getLogger(__name__)

METHODS = ("dbscan", "kmeans", "spectral", "infomap")


# --------------------------------------------------------------------------- report and label helpers


@dataclass(frozen=True)
class ClusterReport:
    """What a clustering produced.

    sizes: cluster sizes, largest first; size_histogram: cluster size -> number of clusters;
    mixed_clusters: clusters holding both "vis" and "ir" members (None without modalities);
    mixed_share: mixed_clusters / num_clusters (None without modalities, 0.0 with no cluster).
    """

    num_samples: int
    num_clusters: int
    num_outliers: int
    sizes: tuple[int, ...]
    size_histogram: dict[int, int]
    mixed_clusters: int | None = None
    mixed_share: float | None = None

    def as_dict(self) -> dict:
        """A JSON-friendly dict (lists instead of tuples)."""
        return {"num_samples": self.num_samples, "num_clusters": self.num_clusters,
                "num_outliers": self.num_outliers, "sizes": list(self.sizes),
                "size_histogram": dict(self.size_histogram), "mixed_clusters": self.mixed_clusters,
                "mixed_share": self.mixed_share}

    def summary(self) -> str:
        """One log line."""
        line = f"{self.num_clusters} clusters, {self.num_outliers}/{self.num_samples} outliers"
        if self.sizes:
            line += f", sizes max {self.sizes[0]} / median {int(np.median(self.sizes))} / min {self.sizes[-1]}"
        if self.mixed_clusters is not None:
            line += f", {self.mixed_clusters} mixed vis+ir ({self.mixed_share:.1%})"
        return line


def modality_is_ir(modality, num_samples: int, *, name: str = "modality") -> np.ndarray:
    """Bool mask is_ir [N] from a sequence of "vis"/"ir" strings or a bool array / tensor is_ir [N]."""
    if isinstance(modality, torch.Tensor):
        modality = modality.detach().cpu().numpy()
    values = np.asarray(modality)
    if values.shape != (num_samples,):
        raise ValueError(f"{name} must hold one entry per sample ({num_samples}), got shape {values.shape}")
    if values.dtype == bool:
        return values
    unknown = sorted({str(value) for value in values.tolist()} - set(MODALITIES))
    if unknown:
        raise ValueError(f"{name} entries must be one of {MODALITIES} (or a bool is_ir mask), got {unknown[:5]}")
    return values == "ir"


def relabel_consecutive(labels) -> np.ndarray:
    """Map cluster ids to 0..C-1 in increasing id order, keeping -1 (outliers); int64 [N]."""
    labels = _as_label_array(labels, "labels")
    out = np.full_like(labels, -1)
    clustered = labels >= 0
    out[clustered] = np.unique(labels[clustered], return_inverse=True)[1]
    return out


def summarize_clusters(labels, modalities=None) -> ClusterReport:
    """Report on labels [N] (-1 = outlier); modalities: optional "vis"/"ir" strings or is_ir mask [N]."""
    labels = _as_label_array(labels, "labels")
    clustered = labels[labels >= 0]
    ids, counts = np.unique(clustered, return_counts=True)
    sizes = tuple(sorted((int(c) for c in counts), reverse=True))
    histogram = dict(sorted(Counter(sizes).items()))
    mixed_clusters = mixed_share = None
    if modalities is not None:
        is_ir = modality_is_ir(modalities, len(labels), name="modalities")[labels >= 0]
        has_ir = np.isin(ids, clustered[is_ir])
        has_vis = np.isin(ids, clustered[~is_ir])
        mixed_clusters = int(np.sum(has_ir & has_vis))
        mixed_share = mixed_clusters / len(ids) if len(ids) else 0.0
    return ClusterReport(num_samples=len(labels), num_clusters=len(ids), num_outliers=int(np.sum(labels < 0)),
                         sizes=sizes, size_histogram=histogram, mixed_clusters=mixed_clusters,
                         mixed_share=mixed_share)


def as_int_array(values, name: str) -> np.ndarray:
    """A list, numpy array or tensor of integers as an int64 array [N]; ValueError naming `name` otherwise."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.integer) or values.size == 0):
        raise ValueError(f"{name} must be a 1-D integer array, got shape {values.shape} dtype {values.dtype}")
    return values.astype(np.int64)


def _as_label_array(labels, name: str) -> np.ndarray:
    labels = as_int_array(labels, name)
    if labels.size and labels.min() < -1:
        raise ValueError(f"{name} must be cluster ids >= 0 or -1 for outliers, got {labels.min()}")
    return labels.astype(np.int64)


# --------------------------------------------------------------------------- clustering


def cluster_labels(distance, method: str = "dbscan", eps: float = 0.6, min_samples: int = 4, *,
                   features=None, num_clusters: int | None = None, modalities=None, seed: int = 0) -> np.ndarray:
    """Cluster N samples; int64 labels [N], -1 for outliers (only DBSCAN and infomap make outliers).

    distance: [N, N] csr_matrix (unstored pairs at distance 1) or dense ndarray / tensor; unused by kmeans.
    dbscan: eps in (0, 1), min_samples (the sample itself included); kmeans: features [N, D] and
    num_clusters; spectral: num_clusters; infomap: needs the optional `infomap` package.
    modalities: optional "vis"/"ir" per sample, only for the logged report.
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}: expected one of {', '.join(METHODS)}")
    if method == "dbscan":
        _check_dbscan_arguments(eps, min_samples)
    if method == "kmeans":
        labels = _kmeans(features, num_clusters, seed=seed)
    else:
        graph = distance_graph(distance)
        if modalities is not None:  # fail before clustering, not after
            modality_is_ir(modalities, graph.shape[0], name="modalities")
        if method == "dbscan":
            labels = _dbscan(graph, eps=eps, min_samples=min_samples)
        elif method == "spectral":
            labels = _spectral(graph, num_clusters, seed=seed)
        else:
            labels = _infomap(graph, seed=seed)
    report = summarize_clusters(labels, modalities)
    logger.info("%s clustering: %s", method, report.summary())
    return labels


def distance_graph(distance) -> sparse.csr_matrix:
    """Canonical float64 csr [N, N] of the pairs closer than 1: rows sorted by distance, duplicates
    reduced to their minimum, negatives clipped to 0, diagonal stored as an explicit 0.

    Explicit zeros (duplicate samples) are kept as neighbours; entries >= 1 are dropped, which
    changes nothing since unstored pairs are at distance 1 anyway.
    """
    rows, cols, values, num_samples = _coordinates(distance)
    if not np.all(np.isfinite(values)):
        raise ValueError("distance holds NaN or infinite entries")
    keep = (rows != cols) & (values < 1.0)
    rows = np.concatenate([rows[keep], np.arange(num_samples)])
    cols = np.concatenate([cols[keep], np.arange(num_samples)])
    values = np.concatenate([np.maximum(values[keep], 0.0), np.zeros(num_samples)])
    order = np.lexsort((values, rows))  # by row, then by distance: the first of a duplicate pair is its minimum
    rows, cols, values = rows[order], cols[order], values[order]
    pair = rows.astype(np.int64) * num_samples + cols
    _, first = np.unique(pair, return_index=True)
    first.sort()
    rows, cols, values = rows[first], cols[first], values[first]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_samples))])
    return sparse.csr_matrix((values, cols.astype(np.int64), indptr), shape=(num_samples, num_samples))


def affinity_graph(graph: sparse.csr_matrix) -> sparse.csr_matrix:
    """Symmetric affinity csr [N, N]: (A + A.T) / 2 with A = 1 - d on stored pairs, no diagonal, no zeros."""
    affinity = graph.copy()
    affinity.data = 1.0 - affinity.data
    affinity.setdiag(0.0)
    affinity.eliminate_zeros()
    affinity = ((affinity + affinity.T) * 0.5).tocsr()
    affinity.eliminate_zeros()
    return affinity


def _coordinates(distance) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(rows, cols, values, N) of every stored entry of a square sparse or dense distance matrix."""
    if sparse.issparse(distance):
        if distance.ndim != 2 or distance.shape[0] != distance.shape[1]:
            raise ValueError(f"distance must be a square [N, N] matrix, got shape {distance.shape}")
        coo = sparse.coo_matrix(distance)
        return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64), distance.shape[0]
    if distance is None:
        raise ValueError("distance is required for dbscan, spectral and infomap clustering")
    if isinstance(distance, torch.Tensor):
        distance = distance.detach().cpu().double().numpy()
    dense = np.asarray(distance, dtype=np.float64)
    if dense.ndim != 2 or dense.shape[0] != dense.shape[1]:
        raise ValueError(f"distance must be a square [N, N] matrix, got shape {dense.shape}")
    if np.isnan(dense).any():
        raise ValueError("distance holds NaN entries")
    rows, cols = np.nonzero(dense < 1.0)  # the rest is at distance >= 1: the same as unstored
    return rows.astype(np.int64), cols.astype(np.int64), dense[rows, cols], dense.shape[0]


def _check_dbscan_arguments(eps: float, min_samples: int) -> None:
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must lie in (0, 1) for a sparse distance graph, got {eps}: pairs that are not "
                         "stored count as distance 1, so eps >= 1 would make them neighbours")
    if int(min_samples) != min_samples or min_samples < 1:
        raise ValueError(f"min_samples must be a positive integer, got {min_samples}")


def _dbscan(graph: sparse.csr_matrix, *, eps: float, min_samples: int) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    model = DBSCAN(eps=eps, min_samples=int(min_samples), metric="precomputed")
    return model.fit_predict(graph).astype(np.int64)


def _kmeans(features, num_clusters: int | None, *, seed: int, niter: int = 20) -> np.ndarray:
    import faiss
    from sklearn.cluster import kmeans_plusplus

    if features is None:
        raise ValueError("features [N, D] are required for kmeans clustering")
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().float().numpy()
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {x.shape}")
    _check_num_clusters(num_clusters, len(x), "kmeans")
    # k-means++ seeding: faiss' random seeding often puts two centroids in one well-separated cluster
    init, _ = kmeans_plusplus(x, num_clusters, random_state=seed)
    kmeans = faiss.Kmeans(x.shape[1], num_clusters, niter=niter, seed=seed, verbose=False,
                          min_points_per_centroid=1, max_points_per_centroid=max(256, len(x)))
    kmeans.train(x, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
    _, assignment = kmeans.index.search(x, 1)
    return assignment[:, 0].astype(np.int64)


def _spectral(graph: sparse.csr_matrix, num_clusters: int | None, *, seed: int) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    _check_num_clusters(num_clusters, graph.shape[0], "spectral")
    model = SpectralClustering(n_clusters=num_clusters, affinity="precomputed", assign_labels="cluster_qr",
                               random_state=seed)
    affinity = affinity_graph(graph)
    num_components = csgraph.connected_components(affinity, directed=False)[0]
    logger.debug("spectral clustering: the affinity graph has %d connected components", num_components)
    with warnings.catch_warnings():  # a kNN graph made of several components is the normal case
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        labels = model.fit_predict(affinity)
    return labels.astype(np.int64)


def _infomap(graph: sparse.csr_matrix, *, seed: int) -> np.ndarray:
    """Two-level infomap on the affinity graph; samples without links or left alone in a module become -1."""
    try:
        import infomap
    except ImportError:
        raise ValueError("method='infomap' needs the `infomap` package (pip install infomap), which is not "
                         f"installed; the methods that need nothing more: {', '.join(m for m in METHODS if m != 'infomap')}"
                         ) from None
    affinity = affinity_graph(graph)
    upper = sparse.triu(affinity, k=1).tocoo()
    model = infomap.Infomap(silent=True, two_level=True, seed=seed % (2**31 - 1) + 1, num_trials=1)  # seed >= 1
    model.add_nodes(range(graph.shape[0]))
    model.add_links([(int(i), int(j), float(w)) for i, j, w in zip(upper.row, upper.col, upper.data)])
    result = model.run()
    modules = result.modules() if hasattr(result, "modules") else model.get_modules()  # infomap >= 2.16 / older
    labels = np.array([modules[node] for node in range(graph.shape[0])], dtype=np.int64)
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    labels[counts[inverse] == 1] = -1
    labels[np.diff(affinity.indptr) == 0] = -1  # infomap puts a node without links in any module at no cost
    return relabel_consecutive(labels)


def _check_num_clusters(num_clusters: int | None, num_samples: int, method: str) -> None:
    if num_clusters is None:
        raise ValueError(f"num_clusters is required for {method} clustering")
    if int(num_clusters) != num_clusters or not 1 <= num_clusters <= num_samples:
        raise ValueError(f"num_clusters must be an integer in [1, {num_samples}] (the number of samples), "
                         f"got {num_clusters}")
