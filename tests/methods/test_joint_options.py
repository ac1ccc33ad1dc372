"""joint's mixed-modal clustering options: its own neighbourhoods and PCLHD's modality-balanced query expansion,
checked against a transcription (mixed-modal features -> Jaccard with those k1 / k2 and is_ir -> DBSCAN)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid.cluster import cluster_labels, jaccard_distance, mixed_modal_features
from reid.config import ConfigError
from reid import pseudo_labels
from reid.methods import EpochContext, build_method
from reid.pseudo_labels import relabel_consecutive
from reid.train_config import ClusterConfig

# 8 identities, each 3 visible + 2 infrared images; the infrared features sit near their identity's visible ones
PIDS = np.repeat(np.arange(8), 5)
IS_IR = np.tile([False, False, False, True, True], 8)


def joint_context(cluster: ClusterConfig) -> EpochContext:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(8, 16, generator=generator)
    features = F.normalize(centres[PIDS] + 0.6 * torch.randn(len(PIDS), 16, generator=generator), dim=1)
    views = F.normalize(centres[PIDS] + 0.6 * torch.randn(len(PIDS), 16, generator=generator), dim=1)
    return EpochContext(features=features, is_ir=IS_IR, true_ids=PIDS, cluster=cluster, temperature=0.05,
                        momentum=0.1, stage_epoch=0, seed=0, device=torch.device("cpu"), has_views=True,
                        view_features=views)


def transcribed_distance(ctx: EpochContext, k1: int, k2: int, balanced: bool):
    """The sparse Jaccard distance [N, N] of the mixed-modal features, as the options ask."""
    cluster = ctx.cluster
    mixed = mixed_modal_features(ctx.features, ctx.view_features, IS_IR, unify=cluster.unify, center=cluster.center)
    return jaccard_distance(mixed, k1=k1, k2=k2, normalise=False, is_ir=IS_IR if balanced else None)


def dense(distance) -> np.ndarray:
    return distance.toarray() if hasattr(distance, "toarray") else np.asarray(distance)


@pytest.fixture
def clustered(monkeypatch) -> list:
    """The distances joint's clustering hands to the clusterer (and then clusters them as usual)."""
    seen = []

    def spy(distance, **kwargs):
        seen.append(dense(distance))
        return cluster_labels(distance, **kwargs)

    monkeypatch.setattr(pseudo_labels, "cluster_labels", spy)
    return seen


@pytest.mark.parametrize("unify, center", [("both", False), ("mean", True)])
@pytest.mark.parametrize("options, k1, k2, balanced", [
    ({}, 3, 2, False),  # the cluster section's neighbourhoods
    ({"mixed_k1": 6, "mixed_k2": 3}, 6, 3, False),
    ({"mixed_k1": 6, "mixed_k2": 3, "balanced": True}, 6, 3, True),
])
def test_joint_clusters_the_mixed_modal_space_with_its_options(unify, center, options, k1, k2, balanced, clustered):
    ctx = joint_context(ClusterConfig(k1=3, k2=2, eps=0.6, min_samples=2, unify=unify, center=center))
    labels = build_method("joint", options).pseudo_labels("cross", ctx).labels
    expected = transcribed_distance(ctx, k1, k2, balanced)
    assert len(clustered) == 1
    np.testing.assert_allclose(clustered[0], dense(expected), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels, relabel_consecutive(cluster_labels(
        expected, method="dbscan", eps=0.6, min_samples=2, modalities=np.where(IS_IR, "ir", "vis"))))


def test_the_options_change_the_distances():
    ctx = joint_context(ClusterConfig(k1=3, k2=2, eps=0.6, min_samples=2, unify="mean", center=True))
    distances = [dense(transcribed_distance(ctx, *args)) for args in ((3, 2, False), (6, 3, False), (6, 3, True))]
    assert not np.allclose(distances[0], distances[1]) and not np.allclose(distances[1], distances[2])


@pytest.mark.parametrize("options, key", [({"mixed_k1": 0}, "mixed_k1"), ({"view_weight": -1}, "view_weight"),
                                          ({"cross_view_weight": -0.5}, "cross_view_weight")])
def test_bad_joint_options_name_the_key(options, key):
    with pytest.raises(ConfigError, match=f"method.options.{key}"):
        build_method("joint", options)
