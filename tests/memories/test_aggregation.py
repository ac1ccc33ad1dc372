"""aggregate_cross_modal against ADCA's cross-modality memory aggregation (yangbincv/ADCA adca_sysu_train.py:814-850,
with `select_merge_data`, lines 358-366; the memories `F.normalize(generate_cluster_features(...))`, lines
770-795), transcribed densely in reference_memories.py (np.argsort over the whole similarity matrix, Counter,
sorted(..., reverse=True)): the cluster pairs chosen, in order, and the visible and infrared prototypes after."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid.memories import ClusterMemory, aggregate_cross_modal, cross_modal_cluster_votes, greedy_cluster_pairs
from reference_memories import generate_cluster_features, random_unit, reference_cma, unit

# identity of each cluster and its size; visible 1 and 2 share an identity (they compete for infrared 1),
# infrared 2 and 3 share one (visible 3 votes for both, equally often: a tie), visible 4 / 5 and infrared 4 have no
# partner identity
VIS_CLUSTERS = [(0, 3), (1, 2), (1, 2), (2, 2), (3, 3), (5, 2)]
IR_CLUSTERS = [(0, 2), (1, 3), (2, 2), (2, 2), (4, 2)]


def modality(clusters, centres, noise, outliers, generator, outlier_identity=None):
    """(features [N, D] unit, labels [N]) for clusters [(identity, size)], plus `outliers` rows labelled -1 (near
    `outlier_identity`'s centre, or random), rows shuffled."""
    labels = sum(([c] * size for c, (_, size) in enumerate(clusters)), []) + [-1] * outliers
    identities = [identity for identity, size in clusters for _ in range(size)]
    base = centres[identities]
    extra = centres[[outlier_identity] * outliers] if outlier_identity is not None else \
        random_unit(outliers, centres.shape[1], generator)
    features = unit(torch.cat([base, extra]) + noise * torch.randn(len(labels), centres.shape[1], generator=generator))
    order = torch.randperm(len(labels), generator=generator)
    return features[order], np.array(labels)[order.numpy()]


def scene(seed: int, noise: float = 0.12, dim: int = 32):
    generator = torch.Generator().manual_seed(seed)
    centres = random_unit(6, dim, generator)
    vis = modality(VIS_CLUSTERS, centres, noise, 2, generator, outlier_identity=0)
    ir = modality(IR_CLUSTERS, centres, noise, 2, generator)
    return vis, ir


def both(vis_features, vis_labels, ir_features, ir_labels, **options):
    """(ours: pairs, vis prototypes, ir prototypes), (reference: the same and its ranked list); both from the
    memories the trainers build (normalised cluster means)."""
    vis_memory = ClusterMemory.from_features(vis_features, vis_labels)
    ir_memory = ClusterMemory.from_features(ir_features, ir_labels)
    rgb = F.normalize(generate_cluster_features(vis_labels.tolist(), vis_features), dim=1)
    ir = F.normalize(generate_cluster_features(ir_labels.tolist(), ir_features), dim=1)
    torch.testing.assert_close(vis_memory.prototypes, rgb, rtol=0, atol=1e-6)
    torch.testing.assert_close(ir_memory.prototypes, ir, rtol=0, atol=1e-6)
    ref_rgb, ref_ir, ref_pairs, ranked = reference_cma(
        vis_memory.prototypes, ir_memory.prototypes, vis_features, ir_features, vis_labels, ir_labels,
        threshold=options.get("threshold", 0.5), lamda_cm=options.get("weight", 0.1))
    ir_before = ir_memory.prototypes.clone()
    pairs = aggregate_cross_modal(vis_memory, ir_memory, vis_features, ir_features, vis_labels, ir_labels, **options)
    torch.testing.assert_close(ir_memory.prototypes, ir_before, rtol=0, atol=0)
    return (pairs, vis_memory.prototypes, ir_memory.prototypes), (ref_pairs, ref_rgb, ref_ir, ranked)


@pytest.mark.parametrize("seed", range(6))
def test_pairs_and_prototypes_equal_the_reference(seed):
    (vis_features, vis_labels), (ir_features, ir_labels) = scene(seed)
    (pairs, vis, ir), (ref_pairs, ref_vis, ref_ir, ranked) = both(vis_features, vis_labels, ir_features, ir_labels)
    assert pairs == ref_pairs
    torch.testing.assert_close(vis, ref_vis, rtol=0, atol=1e-6)
    torch.testing.assert_close(ir, ref_ir, rtol=0, atol=1e-6)  # the reference's 0.1 ir + 0.9 ir: ir again
    # the scene holds what the rule must handle
    clustered = [(key, count) for key, count in ranked if -1 not in key]
    assert len(clustered) < len(ranked)  # outliers voted (and were skipped)
    assert any(key not in pairs for key, _ in clustered)  # a pair skipped: one of its clusters already taken
    vis_taken, ir_taken = {v for v, _ in pairs}, {i for _, i in pairs}
    assert 5 not in vis_taken and 4 not in ir_taken  # clusters without a partner identity stay as they were
    torch.testing.assert_close(vis[5], ClusterMemory.from_features(vis_features, vis_labels).prototypes[5])
    counts = [count for _, count in clustered]
    assert len(set(counts)) < len(counts)  # ties in vote counts
    assert (1, 1) in pairs or (2, 1) in pairs
    for v, i in pairs:  # moved, not normalised again
        torch.testing.assert_close(vis[v], 0.1 * F.normalize(generate_cluster_features(
            vis_labels.tolist(), vis_features), dim=1)[v] + 0.9 * ir[i], rtol=0, atol=1e-6)
        assert abs(float(vis[v].norm()) - 1) > 1e-4


def test_a_tie_in_votes_goes_to_the_pair_with_the_most_similar_images():
    """Visible 3 has 2 x 2 votes for infrared 2 and for infrared 3: the reference takes the one whose image pair
    comes first in the similarity order, i.e. the most similar image pair."""
    hits = 0
    for seed in range(6):
        (vis_features, vis_labels), (ir_features, ir_labels) = scene(seed)
        (pairs, _, _), (ref_pairs, _, _, ranked) = both(vis_features, vis_labels, ir_features, ir_labels)
        counts = dict(ranked)
        if counts.get((3, 2)) == counts.get((3, 3)) == 4:
            hits += 1
            votes, best = cross_modal_cluster_votes(vis_features, ir_features, vis_labels, ir_labels)
            winner = (3, 2) if best[3, 2] > best[3, 3] else (3, 3)
            assert winner in ref_pairs and winner in pairs
    assert hits >= 3


@pytest.mark.parametrize("threshold, weight, noise", [(0.3, 0.1, 0.2), (0.7, 0.4, 0.1), (0.5, 0.0, 0.25)])
def test_other_thresholds_weights_and_noisier_scenes(threshold, weight, noise):
    for seed in range(3):
        (vis_features, vis_labels), (ir_features, ir_labels) = scene(seed + 10, noise=noise)
        (pairs, vis, ir), (ref_pairs, ref_vis, ref_ir, _) = both(vis_features, vis_labels, ir_features, ir_labels,
                                                                 threshold=threshold, weight=weight)
        assert pairs == ref_pairs
        torch.testing.assert_close(vis, ref_vis, rtol=0, atol=1e-6)
        torch.testing.assert_close(ir, ref_ir, rtol=0, atol=1e-6)


def test_random_features_many_competing_pairs():
    """Few dimensions, many image pairs above the threshold: long ranked lists full of conflicts and ties."""
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        vis_features, ir_features = random_unit(40, 4, generator), random_unit(30, 4, generator)
        vis_labels = torch.randint(-1, 7, (40,), generator=generator).numpy()
        ir_labels = torch.randint(-1, 5, (30,), generator=generator).numpy()
        vis_labels[:7], ir_labels[:5] = np.arange(7), np.arange(5)  # every cluster id used
        (pairs, vis, ir), (ref_pairs, ref_vis, ref_ir, ranked) = both(vis_features, vis_labels, ir_features,
                                                                       ir_labels)
        assert len(ranked) > 20 and pairs == ref_pairs
        torch.testing.assert_close(vis, ref_vis, rtol=0, atol=1e-6)
        torch.testing.assert_close(ir, ref_ir, rtol=0, atol=1e-6)


def test_votes_in_blocks_equal_one_block_and_the_reference_counts():
    (vis_features, vis_labels), (ir_features, ir_labels) = scene(1)
    votes, best = cross_modal_cluster_votes(vis_features, ir_features, vis_labels, ir_labels)
    for block_rows in (1, 3, 7):
        v, b = cross_modal_cluster_votes(vis_features, ir_features, vis_labels, ir_labels, block_rows=block_rows)
        np.testing.assert_array_equal(v, votes)
        np.testing.assert_allclose(b, best, rtol=0, atol=1e-6)  # other matmul shapes: float32 rounding
    _, _, _, ranked = reference_cma(torch.zeros(6, 32), torch.zeros(5, 32), vis_features, ir_features, vis_labels,
                                    ir_labels)
    expected = np.zeros_like(votes)
    for (v, i), count in ranked:
        if v >= 0 and i >= 0:
            expected[v, i] = count
    np.testing.assert_array_equal(votes, expected)
    similarity = (vis_features @ ir_features.t()).numpy()
    for v, i in zip(*np.nonzero(votes)):
        block = similarity[np.ix_(vis_labels == v, ir_labels == i)]
        assert best[v, i] == pytest.approx(block.max(), abs=1e-6)
    assert np.all(np.isneginf(best[votes == 0]))


def test_greedy_pairs_by_hand():
    votes = np.array([[3, 3, 0], [5, 1, 0], [0, 0, 0]])
    best = np.array([[0.9, 0.95, -np.inf], [0.6, 0.7, -np.inf], [-np.inf] * 3])
    # (1, 0) has the most votes; (0, 1) beats (0, 0) on the tie by its best similarity; cluster 2s never vote
    assert greedy_cluster_pairs(votes, best) == [(1, 0), (0, 1)]
    assert greedy_cluster_pairs(np.zeros((2, 2), dtype=np.int64), np.full((2, 2), -np.inf)) == []
