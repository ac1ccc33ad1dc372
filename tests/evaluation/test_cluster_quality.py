"""cluster_quality: pseudo-label metrics against true ids, outlier conventions, edge cases and scale."""
from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from reid.evaluation.cluster_quality import ClusterQuality, cluster_quality


def singletons(labels):
    """labels with every -1 replaced by a fresh cluster id."""
    labels = np.array(labels, dtype=np.int64)
    outliers = labels < 0
    labels[outliers] = labels.max(initial=-1) + 1 + np.arange(outliers.sum())
    return labels


def brute_force_pairs(labels, ids):
    """(same cluster, same id, same both) among clustered samples and same id over all: O(N^2)."""
    same_cluster = same_id = both = same_id_all = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        sid = ids[i] == ids[j]
        same_id_all += sid
        if labels[i] < 0 or labels[j] < 0:
            continue
        sc = labels[i] == labels[j]
        same_cluster += sc
        same_id += sid
        both += sc and sid
    return same_cluster, same_id, both, same_id_all


def test_hand_computed_example():
    labels = [0, 0, 0, 1, 1, -1]
    ids = [5, 5, 6, 6, 6, 7]
    q = cluster_quality(labels, ids)
    # clustered samples: cluster 0 = {5, 5, 6}, cluster 1 = {6, 6}; the 7 is an outlier
    # same-cluster pairs: C(3,2) + C(2,2) = 4; of those sharing an id: (5,5) in 0 + (6,6) in 1 = 2
    # same-id pairs among clustered: C(2,2) for 5 + C(3,2) for 6 = 4; of those in one cluster: 2
    assert (q.pairs_same_cluster, q.pairs_same_cluster_and_id, q.pairs_same_id) == (4, 2, 4)
    assert q.pairwise_precision == 0.5 and q.pairwise_recall == 0.5 and q.pairwise_f == 0.5
    assert q.purity == pytest.approx((2 + 2) / 5)  # majority 5 (2 of 3) in cluster 0, 6 (2 of 2) in 1
    assert q.ari == pytest.approx(adjusted_rand_score(ids[:5], labels[:5]))
    assert q.nmi == pytest.approx(normalized_mutual_info_score(ids[:5], labels[:5]))
    # outliers as singletons: the 7 is alone in both partitions, so no same-id pair is added
    assert q.pairs_same_id_with_outliers == 4 and q.pairwise_recall_with_outliers_as_singletons == 0.5
    assert q.ari_with_outliers_as_singletons == pytest.approx(adjusted_rand_score(ids, singletons(labels)))
    assert q.nmi_with_outliers_as_singletons == pytest.approx(normalized_mutual_info_score(ids, singletons(labels)))
    assert (q.num_samples, q.num_clustered, q.num_clusters, q.num_outliers) == (6, 5, 2, 1)
    assert q.outlier_fraction == pytest.approx(1 / 6)
    # ids 5 and 6 are each a majority somewhere, 7 is not: coverage 2 / 3
    assert (q.num_true_ids, q.num_covered_ids) == (3, 2) and q.id_coverage == pytest.approx(2 / 3)
    assert q.mixed_clusters is None and q.mixed_share is None


def test_outlier_sharing_an_id_counts_as_missed_only_with_singletons():
    labels = [0, 0, 1, 1, -1]
    ids = [1, 1, 2, 2, 2]
    q = cluster_quality(labels, ids)
    assert q.pairwise_precision == 1.0 and q.pairwise_recall == 1.0 and q.ari == 1.0 and q.purity == 1.0
    # all samples: id 2 has C(3,2) = 3 pairs, one of them (2,3) clustered together: recall (1 + 1) / (1 + 3)
    assert q.pairs_same_id_with_outliers == 4
    assert q.pairwise_recall_with_outliers_as_singletons == 0.5
    assert q.pairwise_f_with_outliers_as_singletons == pytest.approx(2 * 2 / (2 + 4))
    assert q.ari_with_outliers_as_singletons == pytest.approx(adjusted_rand_score(ids, singletons(labels)))
    assert q.ari_with_outliers_as_singletons < 1.0


def test_perfect_clustering_scores_one():
    ids = np.repeat([3, 8, 1, 4], [4, 2, 5, 3])
    labels = np.repeat([0, 1, 2, 3], [4, 2, 5, 3])
    q = cluster_quality(labels, ids)
    for name in ("ari", "nmi", "pairwise_precision", "pairwise_recall", "pairwise_f", "purity", "id_coverage",
                 "ari_with_outliers_as_singletons", "nmi_with_outliers_as_singletons",
                 "pairwise_recall_with_outliers_as_singletons", "pairwise_f_with_outliers_as_singletons"):
        assert getattr(q, name) == pytest.approx(1.0), name
    assert q.num_outliers == 0 and q.outlier_fraction == 0.0 and q.num_clusters == 4 == q.num_true_ids


def test_every_sample_its_own_cluster():
    ids = [0, 0, 1, 1, 2]
    q = cluster_quality([4, 3, 2, 1, 0], ids)
    assert q.pairs_same_cluster == 0 and q.pairwise_precision is None  # no predicted pair
    assert q.pairwise_recall == 0.0 and q.pairwise_f == 0.0 and q.purity == 1.0
    assert q.ari == pytest.approx(0.0) and q.nmi == pytest.approx(normalized_mutual_info_score(ids, range(5)))
    assert q.num_covered_ids == 3  # each id is the majority of a singleton
    # singletons with distinct ids: no pair anywhere, so recall and F are undefined, ARI / NMI as sklearn
    q = cluster_quality([0, 1, 2], [7, 8, 9])
    assert q.pairwise_precision is None and q.pairwise_recall is None and q.pairwise_f is None
    assert q.ari == 1.0 and q.nmi == 1.0


def test_all_outliers_gives_none_for_clustered_metrics():
    ids = [0, 0, 1, 2]
    q = cluster_quality([-1, -1, -1, -1], ids)
    for name in ("ari", "nmi", "pairwise_precision", "pairwise_recall", "purity"):
        assert getattr(q, name) is None, name
    assert q.pairwise_f is None  # no clustered pair of either kind
    assert (q.num_clusters, q.num_outliers, q.num_clustered, q.outlier_fraction) == (0, 4, 0, 1.0)
    assert q.id_coverage == 0.0 and q.num_true_ids == 3
    assert q.ari_with_outliers_as_singletons == pytest.approx(adjusted_rand_score(ids, [0, 1, 2, 3]))
    assert q.nmi_with_outliers_as_singletons == pytest.approx(normalized_mutual_info_score(ids, [0, 1, 2, 3]))
    assert q.pairwise_recall_with_outliers_as_singletons == 0.0 == q.pairwise_f_with_outliers_as_singletons
    assert "n/a" in q.summary()
    json.dumps(q.as_dict())


def test_empty_single_sample_and_single_cluster():
    q = cluster_quality([], [], modalities=[])
    assert q.num_samples == 0 and q.num_true_ids == 0 and q.mixed_clusters == 0 and q.mixed_share == 0.0
    assert all(value is None for key, value in q.as_dict().items()
               if key not in ("num_samples", "num_clustered", "num_clusters", "num_outliers", "num_true_ids",
                              "num_covered_ids", "pairs_same_cluster", "pairs_same_id",
                              "pairs_same_cluster_and_id", "pairs_same_id_with_outliers",
                              "mixed_clusters", "mixed_share", "cross_pairs_same_cluster", "cross_pairs_same_id",
                              "cross_pairs_same_cluster_and_id"))
    q.summary()

    q = cluster_quality(np.array([0]), np.array([42]))
    assert q.ari == 1.0 and q.nmi == 1.0 and q.purity == 1.0 and q.id_coverage == 1.0
    assert q.pairwise_precision is None and q.pairwise_recall is None and q.pairwise_f is None

    q = cluster_quality([0] * 6, [1, 1, 1, 2, 2, 3])  # one cluster holding three persons
    assert q.pairwise_precision == pytest.approx((3 + 1) / 15) and q.pairwise_recall == 1.0
    assert q.purity == 0.5 and q.ari == pytest.approx(0.0) and q.nmi == pytest.approx(0.0)
    assert q.id_coverage == pytest.approx(1 / 3)


def test_label_names_do_not_matter():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 12, size=200)
    ids = rng.integers(0, 15, size=200)
    renamed = labels.copy()
    permutation = rng.permutation(np.arange(100, 112))
    renamed[labels >= 0] = permutation[labels[labels >= 0]]
    renamed_ids = np.array([1000, 7, 3, 99, 5, 12, 40, 41, 8, 2, 77, 64, 31, 0, -1])[ids]
    assert cluster_quality(renamed, renamed_ids).as_dict() == pytest.approx(cluster_quality(labels, ids).as_dict())


def test_majority_ties_cover_every_tied_id():
    q = cluster_quality([0, 0, 1, 1, 1], [4, 9, 9, 9, 2])  # cluster 0 ties 4 and 9; cluster 1 is 9, 9, 2
    assert q.num_covered_ids == 2 and q.id_coverage == pytest.approx(2 / 3) and q.purity == pytest.approx((1 + 2) / 5)


def test_accepts_lists_arrays_and_tensors():
    labels, ids = [0, 0, 1, -1], [2, 2, 3, 3]
    reference = cluster_quality(labels, ids)
    assert cluster_quality(np.array(labels), np.array(ids, dtype=np.int32)) == reference
    assert cluster_quality(torch.tensor(labels), torch.tensor(ids)) == reference


def test_mixed_modality_clusters():
    labels = [0, 0, 1, 1, 2, 2, -1]
    ids = [0, 0, 1, 1, 2, 2, 2]
    modalities = ["vis", "ir", "vis", "vis", "ir", "vis", "ir"]
    q = cluster_quality(labels, ids, modalities)
    assert q.mixed_clusters == 2 and q.mixed_share == pytest.approx(2 / 3)
    assert cluster_quality(labels, ids, np.array(modalities) == "ir").mixed_clusters == 2
    assert "2 mixed vis+ir" in q.summary()
    assert cluster_quality(labels, ids, ["vis"] * 7).mixed_clusters == 0


def test_pair_counts_match_brute_force():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 20, size=300)
    ids = rng.integers(0, 25, size=300)
    q = cluster_quality(labels, ids)
    same_cluster, same_id, both, same_id_all = brute_force_pairs(labels.tolist(), ids.tolist())
    assert (q.pairs_same_cluster, q.pairs_same_id, q.pairs_same_cluster_and_id,
            q.pairs_same_id_with_outliers) == (same_cluster, same_id, both, same_id_all)
    assert q.pairwise_precision == pytest.approx(both / same_cluster)
    assert q.pairwise_recall == pytest.approx(both / same_id)
    assert q.pairwise_recall_with_outliers_as_singletons == pytest.approx(both / same_id_all)
    kept = labels >= 0
    assert q.ari == pytest.approx(adjusted_rand_score(ids[kept], labels[kept]))
    assert q.nmi == pytest.approx(normalized_mutual_info_score(ids[kept], labels[kept]))
    assert q.ari_with_outliers_as_singletons == pytest.approx(adjusted_rand_score(ids, singletons(labels)))
    majority = sum(np.bincount(ids[labels == c]).max() for c in np.unique(labels[kept]))
    assert q.purity == pytest.approx(majority / kept.sum())


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="true_ids"):
        cluster_quality([0, 1], [0])
    with pytest.raises(ValueError, match="true_ids"):
        cluster_quality([0, 1], [0.5, 1.0])
    with pytest.raises(ValueError, match="labels"):
        cluster_quality([0, -2], [0, 1])
    with pytest.raises(ValueError, match="modalities"):
        cluster_quality([0, 1], [0, 1], ["vis", "rgb"])


def test_scale_34167_samples_is_fast():
    rng = np.random.default_rng(2)
    n = 34_167
    ids = rng.integers(0, 395, size=n)
    labels = np.where(rng.random(n) < 0.8, ids + rng.integers(0, 2, size=n) * 395, -1)  # noisy, 20% outliers
    modalities = np.where(rng.random(n) < 0.5, "vis", "ir")
    start = time.perf_counter()
    q = cluster_quality(labels, ids, modalities)
    assert time.perf_counter() - start < 2.0
    assert isinstance(q, ClusterQuality) and q.num_samples == n and 0.0 < q.pairwise_f < 1.0
    assert q.pairwise_precision == pytest.approx(1.0) and q.purity == pytest.approx(1.0)
    assert q.pairwise_recall == pytest.approx(0.5, abs=0.02)


def test_cross_modal_pairs_and_labelled_shares_equal_a_count_over_every_pair():
    rng = np.random.default_rng(4)
    labels = rng.integers(-1, 6, 80)
    ids = rng.integers(0, 9, 80)
    is_ir = rng.random(80) < 0.4
    same_cluster = same_id = both = 0
    for i, j in itertools.product(np.flatnonzero(~is_ir), np.flatnonzero(is_ir)):  # every (visible, infrared) pair
        sid = ids[i] == ids[j]
        same_id += sid  # outliers included: their pairs are missed
        if labels[i] >= 0 and labels[i] == labels[j]:
            same_cluster += 1
            both += sid
    quality = cluster_quality(labels, ids, np.where(is_ir, "ir", "vis"))
    assert (quality.cross_pairs_same_cluster, quality.cross_pairs_same_id,
            quality.cross_pairs_same_cluster_and_id) == (same_cluster, same_id, both)
    assert quality.cross_modal_precision == pytest.approx(both / same_cluster)
    assert quality.cross_modal_recall == pytest.approx(both / same_id)
    assert quality.cross_modal_f == pytest.approx(2 * both / (same_cluster + same_id))
    assert quality.labelled_vis == pytest.approx(np.mean(labels[~is_ir] >= 0))
    assert quality.labelled_ir == pytest.approx(np.mean(labels[is_ir] >= 0))
    one_modality = cluster_quality([0, 0, 1, -1], [1, 2, 2, 1], ["vis", "vis", "ir", "ir"])
    assert one_modality.cross_pairs_same_cluster == 0 and one_modality.cross_modal_precision is None
    assert one_modality.cross_modal_recall == 0.0 and one_modality.labelled_ir == 0.5
    assert cluster_quality([0, 1], [1, 2]).cross_modal_f is None  # no modalities given
