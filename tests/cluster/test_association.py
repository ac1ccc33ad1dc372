"""Cross-modal association: centroids, Hungarian and Sinkhorn matching with Cv != Ci, merging."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.cluster.association import (associate_hungarian, associate_per_modality, associate_sinkhorn,
                                      cluster_centroids, merge_associated_labels, sinkhorn_plan)

ASSOCIATE = {"hungarian": associate_hungarian, "sinkhorn": associate_sinkhorn}
# vis cluster 0 is ir cluster 5, vis 1 is ir 1, vis 2 is ir 3
MATCH = {0: 5, 1: 1, 2: 3}


def centroids_3_vis_7_ir(seed=0, noise=0.1):
    """vis [3, 32] built as noisy copies of three of the seven ir centroids [7, 32] (MATCH)."""
    generator = torch.Generator().manual_seed(seed)
    ir = torch.nn.functional.normalize(torch.randn(7, 32, generator=generator), dim=1)
    vis = ir[list(MATCH.values())] + noise * torch.randn(3, 32, generator=generator)
    return torch.nn.functional.normalize(vis, dim=1), ir


def test_cluster_centroids_ignore_outliers_and_are_normalised():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0], [0.0, -2.0], [0.0, -4.0]])
    centroids, ids = cluster_centroids(features, np.array([4, 4, -1, 1, 1]))
    assert ids.tolist() == [1, 4] and ids.dtype == torch.int64
    torch.testing.assert_close(centroids, torch.tensor([[0.0, -1.0], [2.0 ** -0.5, 2.0 ** -0.5]]))
    with pytest.raises(ValueError, match="labels"):
        cluster_centroids(features, [0, 1])


@pytest.mark.parametrize("method", ["hungarian", "sinkhorn"])
def test_3_vis_against_7_ir_clusters_match_the_right_three(method):
    vis, ir = centroids_3_vis_7_ir()
    pairs = ASSOCIATE[method](vis, ir)
    assert [(i, j) for i, j, _ in pairs] == [(0, 5), (1, 1), (2, 3)]
    for i, j, similarity in pairs:
        assert similarity == pytest.approx(float(vis[i] @ ir[j]), abs=1e-6) and similarity > 0.8


@pytest.mark.parametrize("method", ["hungarian", "sinkhorn"])
def test_7_vis_against_3_ir_clusters_match_the_right_three(method):
    ir, vis = centroids_3_vis_7_ir()
    pairs = ASSOCIATE[method](vis, ir.numpy())
    assert [(i, j) for i, j, _ in pairs] == [(1, 1), (3, 2), (5, 0)]


@pytest.mark.parametrize("method", ["hungarian", "sinkhorn"])
def test_min_similarity_drops_weak_pairs(method):
    vis, ir = centroids_3_vis_7_ir()
    vis[1] = torch.nn.functional.normalize(vis[1] + 2.0 * torch.nn.functional.normalize(torch.ones(32), dim=0), dim=0)
    strong = ASSOCIATE[method](vis, ir, min_similarity=0.8)
    assert [(i, j) for i, j, _ in strong] == [(0, 5), (2, 3)]
    assert all(similarity >= 0.8 for _, _, similarity in strong)


@pytest.mark.parametrize("method", ["hungarian", "sinkhorn"])
def test_empty_sides_give_no_pairs(method):
    assert ASSOCIATE[method](torch.zeros(0, 4), torch.ones(3, 4)) == []
    with pytest.raises(ValueError, match="feature size"):
        ASSOCIATE[method](torch.ones(2, 4), torch.ones(3, 5))


def test_sinkhorn_dustbin_gives_the_true_match_most_of_a_rows_mass():
    """Balanced OT must spread 1/3 - 1/7 of each vis row onto ir clusters without a partner; the
    dustbin takes that mass instead, so the true partner dominates its row."""
    vis, ir = centroids_3_vis_7_ir()
    similarity = (vis @ ir.T).double().numpy()
    cost = np.full((4, 8), 1.0)
    cost[:3, :7] = 1.0 - similarity
    plan = sinkhorn_plan(cost, epsilon=0.05, num_iters=500, row_mass=np.array([1, 1, 1, 7.0]),
                         col_mass=np.array([1] * 7 + [3.0]))
    np.testing.assert_allclose(plan.sum(axis=1), np.array([1, 1, 1, 7]) / 10, atol=1e-3)  # rows: up to convergence
    for row, col in MATCH.items():
        assert plan[row, col] > 0.95 * plan[row].sum()
    balanced = sinkhorn_plan(1.0 - similarity, epsilon=0.05, num_iters=500)
    assert max(balanced[row, col] / balanced[row].sum() for row, col in MATCH.items()) < 0.5
    # a vis cluster with no partner at all goes to the dustbin instead of stealing one
    orphan = torch.nn.functional.normalize(-ir.sum(dim=0, keepdim=True), dim=1)
    pairs = associate_sinkhorn(torch.cat([vis, orphan]), ir)
    assert [(i, j) for i, j, _ in pairs] == [(0, 5), (1, 1), (2, 3)]


def test_sinkhorn_plan_has_uniform_marginals_of_different_lengths():
    cost = np.random.default_rng(0).uniform(size=(3, 7))
    plan = sinkhorn_plan(cost, epsilon=0.05, num_iters=500)
    np.testing.assert_allclose(plan.sum(axis=1), np.full(3, 1 / 3), atol=1e-6)
    np.testing.assert_allclose(plan.sum(axis=0), np.full(7, 1 / 7), atol=1e-6)
    with pytest.raises(ValueError, match="epsilon"):
        associate_sinkhorn(torch.ones(2, 4), torch.ones(3, 4), epsilon=0.0)


def test_merge_gives_one_label_space():
    vis_labels = np.array([0, 0, 2, 2, -1, 5])
    ir_labels = np.array([1, 1, 4, -1, 7, 7, 9])
    pairs = [(0, 2, 0.9), (2, 0, 0.8)]  # vis 0 <-> ir 7, vis 5 <-> ir 1
    vis_out, ir_out = merge_associated_labels(vis_labels, ir_labels, pairs, np.array([0, 2, 5]),
                                              torch.tensor([1, 4, 7, 9]))
    assert vis_out.tolist() == [0, 0, 1, 1, -1, 2]
    assert ir_out.tolist() == [2, 2, 3, -1, 0, 0, 4]
    assert vis_out.dtype == ir_out.dtype == np.int64


def test_merge_errors():
    with pytest.raises(ValueError, match="one-to-one"):
        merge_associated_labels([0, 1], [0, 1], [(0, 0), (0, 1)], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="outside"):
        merge_associated_labels([0, 1], [0, 1], [(0, 2)], [0, 1], [0, 1])
    with pytest.raises(ValueError, match="vis_labels holds cluster ids missing from vis_cluster_ids: \\[3\\]"):
        merge_associated_labels([0, 3], [0, 1], [], [0, 1], [0, 1])


@pytest.mark.parametrize("method", ["hungarian", "sinkhorn"])
def test_associate_per_modality_joins_overlapping_label_spaces(method):
    vis_centres, ir_centres = centroids_3_vis_7_ir(seed=1, noise=0.05)
    generator = torch.Generator().manual_seed(2)
    vis_ids = np.repeat([0, 1, 2], 4)  # the vis clusters are labelled 0..2 ...
    ir_ids = np.repeat([6, 5, 4, 3, 2, 1, 0], 3)  # ... and the ir clusters 6..0: the spaces overlap
    features = torch.cat([vis_centres[vis_ids], ir_centres[np.arange(7).repeat(3)]])
    features = features + 0.02 * torch.randn(features.shape, generator=generator)
    labels = np.concatenate([vis_ids, ir_ids])
    labels[0] = -1
    modality = ["vis"] * 12 + ["ir"] * 21
    joint = associate_per_modality(features, labels, modality, method=method)
    assert joint.dtype == np.int64 and joint[0] == -1
    ir_joint = joint[12:].reshape(7, 3)
    assert (ir_joint == ir_joint[:, :1]).all()
    for vis_cluster, ir_index in MATCH.items():  # matched clusters share a label, ir index k is ir label 6 - k
        assert set(joint[1:12][vis_ids[1:] == vis_cluster]) == {ir_joint[ir_index, 0]}
    assert sorted(set(joint.tolist()) - {-1}) == list(range(7))
    with pytest.raises(ValueError, match="method"):
        associate_per_modality(features, labels, modality, method="greedy")
