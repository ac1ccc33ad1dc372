"""How good pseudo-labels are against the true person ids: ARI, NMI, pairwise precision / recall / F,
purity, id coverage, outliers and mixed vis+ir clusters.

Everything is computed from the sparse (cluster, true id) contingency table, never from an [N, N] pair
matrix, so N = 34,167 samples takes well under a second.

Two conventions for outliers (label -1, e.g. DBSCAN noise), both reported:

* clustered only (`ari`, `nmi`, `pairwise_precision`, `pairwise_recall`, `pairwise_f`, `purity`):
  outliers are dropped and the metrics score the partition of the clustered samples. This is what the
  training loop uses (outliers get no pseudo-label), but it flatters a clustering that discards the hard
  samples: true pairs that lost a member to the outliers are not counted as missed.
* outliers as singletons (`*_with_outliers_as_singletons`): every outlier is its own one-sample cluster
  and the metrics are over all samples. A singleton makes no same-cluster pair, so pairwise precision is
  the same as above (hence no separate field), while every true pair touching an outlier counts as missed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from reid.cluster.clusterers import as_int_array, modality_is_ir, relabel_consecutive, summarize_clusters


@dataclass(frozen=True)
class ClusterQuality:
    """Quality of pseudo-labels against true ids. Counts are ints, metrics floats in [0, 1] (ARI in [-0.5, 1]).

    A metric is None, never NaN, where it is undefined:

    * ari, nmi, purity: None with no clustered sample (all outliers, or empty input). On one clustered
      sample, or when both partitions are one cluster (or both all singletons), ARI and NMI are 1.0
      (sklearn's convention);
      NMI uses sklearn's default arithmetic normalisation.
    * pairwise_precision = pairs_same_cluster_and_id / pairs_same_cluster: None with no same-cluster
      pair (no cluster larger than one sample).
    * pairwise_recall = pairs_same_cluster_and_id / pairs_same_id (pairs among clustered samples):
      None with no same-id pair.
    * pairwise_f = 2 * pairs_same_cluster_and_id / (pairs_same_cluster + pairs_same_id): the harmonic
      mean of precision and recall when both are defined, 0.0 when one is undefined and there is no
      correct pair (e.g. every sample its own cluster while ids repeat), None when there is no pair at all.
    * *_with_outliers_as_singletons: the same over all samples, outliers as one-sample clusters; None
      only for empty input (recall / F also when no pair exists, as above). Recall and F use
      pairs_same_id_with_outliers, the same-id pairs over all samples, in place of pairs_same_id.
    * outlier_fraction: num_outliers / num_samples, None for empty input.
    * id_coverage = num_covered_ids / num_true_ids, where an id is covered when it is the majority id of
      at least one cluster (every id tied for a cluster's majority counts, so the value does not
      depend on how ids are numbered); low coverage with many clusters means some
      persons are split while others are never the majority anywhere. Ids are counted over all
      samples, outliers included, so with all outliers it is 0.0; None for empty input.
    * mixed_clusters / mixed_share: clusters holding both "vis" and "ir" samples and their share of the
      clusters (from `summarize_clusters`); None without modalities.
    * labelled_vis / labelled_ir: the share of each modality's samples that got a label (not an outlier); None
      without modalities, or without samples of that modality.
    * cross-modal pairs (None without modalities): cross_pairs_same_cluster, the (visible, infrared) sample pairs
      in one cluster; cross_pairs_same_cluster_and_id, those of one true id; cross_pairs_same_id, the (visible,
      infrared) pairs of one true id over all samples, outliers included. cross_modal_precision = correct / same
      cluster (None when no cluster holds both modalities), cross_modal_recall = correct / same id,
      cross_modal_f = 2 correct / (same cluster + same id): how well the labels join the modalities (PGM's
      matching, ADCA's aggregation, mixed-modal clusters), outliers counted as missed.
    """

    num_samples: int
    num_clustered: int
    num_clusters: int
    num_outliers: int
    outlier_fraction: float | None
    num_true_ids: int
    num_covered_ids: int
    id_coverage: float | None
    ari: float | None
    nmi: float | None
    pairwise_precision: float | None
    pairwise_recall: float | None
    pairwise_f: float | None
    purity: float | None
    ari_with_outliers_as_singletons: float | None
    nmi_with_outliers_as_singletons: float | None
    pairwise_recall_with_outliers_as_singletons: float | None
    pairwise_f_with_outliers_as_singletons: float | None
    pairs_same_cluster: int
    pairs_same_id: int
    pairs_same_cluster_and_id: int
    pairs_same_id_with_outliers: int
    mixed_clusters: int | None = None
    mixed_share: float | None = None
    labelled_vis: float | None = None
    labelled_ir: float | None = None
    cross_pairs_same_cluster: int | None = None
    cross_pairs_same_id: int | None = None
    cross_pairs_same_cluster_and_id: int | None = None
    cross_modal_precision: float | None = None
    cross_modal_recall: float | None = None
    cross_modal_f: float | None = None

    def as_dict(self) -> dict:
        """A flat JSON-friendly dict of every field (plain ints, floats and None)."""
        return asdict(self)

    def summary(self) -> str:
        """One log line: ARI, NMI, pairwise F, purity, clusters, outliers and mixed clusters."""
        line = (f"ARI {_fmt(self.ari)} NMI {_fmt(self.nmi)} pairwise F {_fmt(self.pairwise_f)} "
                f"purity {_fmt(self.purity)} (clustered only; ARI {_fmt(self.ari_with_outliers_as_singletons)} "
                f"with outliers as singletons), {self.num_clusters} clusters for {self.num_true_ids} ids, "
                f"{self.num_outliers}/{self.num_samples} outliers")
        if self.outlier_fraction is not None:
            line += f" ({self.outlier_fraction:.1%})"
        if self.mixed_clusters is not None:
            line += f", {self.mixed_clusters} mixed vis+ir ({self.mixed_share:.1%})"
        if self.labelled_vis is not None and self.labelled_ir is not None:
            line += f"; labelled: vis {self.labelled_vis:.1%}, ir {self.labelled_ir:.1%}"
        if self.cross_pairs_same_cluster:
            line += (f"; cross-modal pairs: precision {_fmt(self.cross_modal_precision)} recall "
                     f"{_fmt(self.cross_modal_recall)}")
        return line


def cluster_quality(labels, true_ids, modalities=None) -> ClusterQuality:
    """Score pseudo-labels [N] (-1 = outlier) against true person ids [N].

    labels, true_ids: integer numpy arrays, lists or torch tensors [N] (true ids may be any integers,
    -1 included: only labels treat -1 as an outlier); modalities: optional "vis"/"ir" strings or bool
    is_ir mask [N], for the mixed-cluster count. See `ClusterQuality` and the module docstring for the
    outlier conventions and the values of undefined metrics.
    """
    labels = relabel_consecutive(labels)  # validates: 1-D ints >= -1; clusters become 0..C-1
    true_ids = _as_id_array(true_ids, len(labels))
    report = summarize_clusters(labels, modalities)  # validates modalities; counts clusters / mixed

    num_samples = len(labels)
    clustered = labels >= 0
    num_clustered = int(clustered.sum())
    _, id_index = np.unique(true_ids, return_inverse=True)
    id_index = id_index.reshape(-1)
    num_true_ids = int(id_index.max()) + 1 if num_samples else 0

    # contingency [C, K] of the clustered samples: n_ij = samples of cluster i with true id j
    contingency = sparse.coo_matrix(
        (np.ones(num_clustered, dtype=np.int64), (labels[clustered], id_index[clustered])),
        shape=(report.num_clusters, num_true_ids)).tocsr()
    contingency.sum_duplicates()
    cluster_sizes = np.asarray(contingency.sum(axis=1)).reshape(-1)
    id_sizes = np.asarray(contingency.sum(axis=0)).reshape(-1)
    pairs_same_cluster = _pairs(cluster_sizes)
    pairs_same_id = _pairs(id_sizes)
    pairs_same_cluster_and_id = _pairs(contingency.data)
    pairs_same_id_with_outliers = _pairs(np.bincount(id_index, minlength=num_true_ids))

    purity = None
    num_covered_ids = 0
    if num_clustered:
        majority_count = np.asarray(contingency.max(axis=1).todense()).reshape(-1)
        purity = float(majority_count.sum() / num_clustered)
        # every id reaching its cluster's majority count is covered: ties cover all the tied ids
        is_majority = contingency.data == np.repeat(majority_count, np.diff(contingency.indptr))
        num_covered_ids = int(np.unique(contingency.indices[is_majority]).size)

    ari = nmi = None
    if num_clustered:
        ari = float(adjusted_rand_score(id_index[clustered], labels[clustered]))
        nmi = float(normalized_mutual_info_score(id_index[clustered], labels[clustered]))
    ari_singletons = nmi_singletons = None
    if num_samples:
        singleton_labels = labels.copy()
        singleton_labels[~clustered] = report.num_clusters + np.arange(report.num_outliers)
        ari_singletons = float(adjusted_rand_score(id_index, singleton_labels))
        nmi_singletons = float(normalized_mutual_info_score(id_index, singleton_labels))

    cross_modal = _cross_modal_pairs(labels, id_index, modalities) if modalities is not None else {}
    return ClusterQuality(
        num_samples=num_samples, num_clustered=num_clustered, num_clusters=report.num_clusters,
        num_outliers=report.num_outliers,
        outlier_fraction=report.num_outliers / num_samples if num_samples else None,
        num_true_ids=num_true_ids, num_covered_ids=num_covered_ids,
        id_coverage=num_covered_ids / num_true_ids if num_true_ids else None,
        ari=ari, nmi=nmi,
        pairwise_precision=_ratio(pairs_same_cluster_and_id, pairs_same_cluster),
        pairwise_recall=_ratio(pairs_same_cluster_and_id, pairs_same_id),
        pairwise_f=_ratio(2 * pairs_same_cluster_and_id, pairs_same_cluster + pairs_same_id),
        purity=purity,
        ari_with_outliers_as_singletons=ari_singletons, nmi_with_outliers_as_singletons=nmi_singletons,
        pairwise_recall_with_outliers_as_singletons=_ratio(pairs_same_cluster_and_id, pairs_same_id_with_outliers),
        pairwise_f_with_outliers_as_singletons=_ratio(2 * pairs_same_cluster_and_id,
                                                      pairs_same_cluster + pairs_same_id_with_outliers),
        pairs_same_cluster=pairs_same_cluster, pairs_same_id=pairs_same_id,
        pairs_same_cluster_and_id=pairs_same_cluster_and_id, pairs_same_id_with_outliers=pairs_same_id_with_outliers,
        mixed_clusters=report.mixed_clusters, mixed_share=report.mixed_share, **cross_modal)


def _cross_modal_pairs(labels: np.ndarray, id_index: np.ndarray, modalities) -> dict:
    """The labelled share of each modality and the (visible, infrared) image pairs the labels put in one cluster
    against those of one true id: per cluster c and id k, v_ck and r_ck visible / infrared samples; pairs in one
    cluster sum_c v_c r_c, of them correct sum_ck v_ck r_ck, true pairs sum_k V_k R_k over every sample (so an
    outlier's pairs count as missed)."""
    is_ir = modality_is_ir(modalities, len(labels), name="modalities")
    clustered = labels >= 0
    num_clusters = int(labels.max()) + 1 if clustered.any() else 0
    num_ids = int(id_index.max()) + 1 if len(id_index) else 0

    def counts(mask: np.ndarray) -> sparse.csr_matrix:  # [C, K] of the clustered samples of one modality
        rows = clustered & mask
        return sparse.coo_matrix((np.ones(int(rows.sum()), dtype=np.int64), (labels[rows], id_index[rows])),
                                 shape=(num_clusters, num_ids)).tocsr()

    vis, ir = counts(~is_ir), counts(is_ir)
    same_cluster = int(np.asarray(vis.sum(axis=1)).reshape(-1) @ np.asarray(ir.sum(axis=1)).reshape(-1))
    correct = int(vis.multiply(ir).sum())
    same_id = int(np.bincount(id_index[~is_ir], minlength=num_ids) @ np.bincount(id_index[is_ir], minlength=num_ids))
    num_vis, num_ir = int((~is_ir).sum()), int(is_ir.sum())
    return {"labelled_vis": _ratio(int((clustered & ~is_ir).sum()), num_vis),
            "labelled_ir": _ratio(int((clustered & is_ir).sum()), num_ir),
            "cross_pairs_same_cluster": same_cluster, "cross_pairs_same_id": same_id,
            "cross_pairs_same_cluster_and_id": correct,
            "cross_modal_precision": _ratio(correct, same_cluster), "cross_modal_recall": _ratio(correct, same_id),
            "cross_modal_f": _ratio(2 * correct, same_cluster + same_id)}


def _as_id_array(true_ids, num_samples: int) -> np.ndarray:
    values = as_int_array(true_ids, "true_ids")
    if len(values) != num_samples:
        raise ValueError(f"true_ids must hold one id per label ({num_samples}), got {len(values)}")
    return values.astype(np.int64)


def _pairs(counts) -> int:
    """Sum of C(n, 2) over the counts n."""
    counts = np.asarray(counts, dtype=np.int64)
    return int(np.sum(counts * (counts - 1) // 2))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
