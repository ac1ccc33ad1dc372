"""mixed_modal_features: each unify mode, and the point of it: with translated views, one DBSCAN run
puts the visible and infrared images of an identity into one cluster."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.metrics import adjusted_rand_score

from reid.cluster.clusterers import cluster_labels, summarize_clusters
from reid.cluster.mixed_modal import mixed_modal_features

S = 2.0 ** -0.5


def hand_made():
    """Two 2-D samples, a vis one and an ir one, with their translated views."""
    orig = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    translated = torch.tensor([[1.0, 0.0], [-5.0, 0.0]])
    return orig, translated, ["vis", "ir"]


def test_unify_vis_keeps_visible_and_takes_the_translation_of_infrared():
    orig, translated, modality = hand_made()
    out = mixed_modal_features(orig, translated, modality, unify="vis")
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8], [-1.0, 0.0]]))


def test_unify_ir_keeps_infrared_and_takes_the_translation_of_visible():
    orig, translated, modality = hand_made()
    out = mixed_modal_features(orig, translated, modality, unify="ir")
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_unify_both_concatenates_vis_space_then_ir_space():
    orig, translated, modality = hand_made()
    out = mixed_modal_features(orig, translated, modality, unify="both")
    expected = S * torch.tensor([[0.6, 0.8, 1.0, 0.0],  # vis image: [orig, translated]
                                 [-1.0, 0.0, 0.0, 1.0]])  # ir image: [translated, orig]
    torch.testing.assert_close(out, expected)
    assert out.shape == (2, 4)


def test_unify_mean_averages_the_normalised_views():
    orig, translated, modality = hand_made()
    out = mixed_modal_features(orig, translated, modality, unify="mean")
    first = torch.tensor([1.6, 0.8]) / torch.tensor([1.6, 0.8]).norm()
    torch.testing.assert_close(out, torch.stack([first, S * torch.tensor([-1.0, 1.0])]))


@pytest.mark.parametrize("unify", ["vis", "ir", "both", "mean"])
def test_outputs_are_unit_float32_whatever_the_input(unify):
    generator = torch.Generator().manual_seed(0)
    orig = 5 * torch.randn(10, 8, generator=generator, dtype=torch.float64)
    translated = torch.randn(10, 8, generator=generator, dtype=torch.float64)
    is_ir = torch.arange(10) % 3 == 0
    out = mixed_modal_features(orig, translated, is_ir, unify=unify)
    assert out.dtype == torch.float32 and out.device == orig.device
    assert out.shape == (10, 16 if unify == "both" else 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(10))
    as_strings = ["ir" if flag else "vis" for flag in is_ir.tolist()]
    torch.testing.assert_close(mixed_modal_features(orig, translated, as_strings, unify=unify), out)
    torch.testing.assert_close(mixed_modal_features(orig.numpy(), translated.numpy(), np.array(as_strings),
                                                    unify=unify), out)


def test_errors_name_the_argument():
    orig, translated, modality = hand_made()
    with pytest.raises(ValueError, match="unify"):
        mixed_modal_features(orig, translated, modality, unify="rgb")
    with pytest.raises(ValueError, match="translated"):
        mixed_modal_features(orig, translated[:, :1], modality)
    with pytest.raises(ValueError, match="translated"):
        mixed_modal_features(orig, translated[:1], modality)
    with pytest.raises(ValueError, match="orig"):
        mixed_modal_features(orig[0], translated, modality)
    with pytest.raises(ValueError, match="modality"):
        mixed_modal_features(orig, translated, ["vis"])
    with pytest.raises(ValueError, match="modality"):
        mixed_modal_features(orig, translated, ["vis", "thermal"])


# --------------------------------------------------------------------------- the key scenario

NUM_IDS, PER_MODALITY, DIM = 6, 8, 64


def synthetic_two_modality_features(seed=0):
    """orig, translated [N, D], is_ir [N], identity [N] for 6 identities x (8 vis + 8 ir) images.

    vis image: u_k + 1.5 o_vis; ir image: w_k + 1.5 o_ir (u_k, w_k the identity's two appearances,
    o_vis, o_ir orthogonal modality offsets), plus noise. The modality offset dominates: two vis
    images of different identities (cosine ~0.7) are closer than a vis and an ir image of one
    identity (cosine ~0). The translated view of a vis image is its identity's ir feature plus
    noise, and the reverse.
    """
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(DIM, 2 * NUM_IDS + 2)))[0].T  # orthonormal directions
    u, w, o_vis, o_ir = basis[:NUM_IDS], basis[NUM_IDS:2 * NUM_IDS], basis[-2], basis[-1]
    identity = np.tile(np.repeat(np.arange(NUM_IDS), PER_MODALITY), 2)
    is_ir = np.repeat([False, True], NUM_IDS * PER_MODALITY)
    vis_space = u[identity] + 1.5 * o_vis
    ir_space = w[identity] + 1.5 * o_ir

    def noisy(x):
        return x + 0.03 * rng.normal(size=x.shape)

    orig = np.where(is_ir[:, None], noisy(ir_space), noisy(vis_space))
    translated = np.where(is_ir[:, None], noisy(vis_space), noisy(ir_space))
    return torch.tensor(orig, dtype=torch.float32), torch.tensor(translated, dtype=torch.float32), is_ir, identity


def knn_cosine_distance(features, k=20):
    """csr [N, N] keeping each row's k nearest cosine distances (itself included)."""
    features = torch.nn.functional.normalize(torch.as_tensor(features).double(), dim=1).numpy()
    distance = np.clip(1.0 - features @ features.T, 0.0, 2.0)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(len(features)), k)
    return sparse.csr_matrix((distance[rows, nearest.ravel()], (rows, nearest.ravel())), shape=distance.shape)


def test_on_original_features_clusters_never_mix_modalities():
    orig, _, is_ir, identity = synthetic_two_modality_features()
    labels = cluster_labels(knn_cosine_distance(orig), eps=0.2, min_samples=4)
    report = summarize_clusters(labels, is_ir)
    assert report.num_outliers == 0 and report.num_clusters == 2 * NUM_IDS  # one per identity and modality
    assert report.mixed_clusters == 0
    for person in range(NUM_IDS):  # the vis and ir images of one identity are apart
        assert not set(labels[(identity == person) & ~is_ir]) & set(labels[(identity == person) & is_ir])
    # with an eps wide enough to join a vis and an ir image of one identity, clustering is by modality
    wide = cluster_labels(knn_cosine_distance(orig, k=60), eps=0.35, min_samples=4)
    assert adjusted_rand_score(is_ir, wide) == 1.0


@pytest.mark.parametrize("unify", ["vis", "ir", "both"])
def test_mixed_modal_features_put_both_modalities_of_an_identity_in_one_cluster(unify):
    orig, translated, is_ir, identity = synthetic_two_modality_features()
    features = mixed_modal_features(orig, translated, is_ir, unify=unify)
    labels = cluster_labels(knn_cosine_distance(features), eps=0.2, min_samples=4)
    assert adjusted_rand_score(identity, labels) == 1.0 and (labels >= 0).all()
    report = summarize_clusters(labels, is_ir)
    assert (report.num_clusters, report.mixed_clusters) == (NUM_IDS, NUM_IDS)


@pytest.mark.skipif(importlib.util.find_spec("reid.cluster.jaccard") is None, reason="reid.cluster.jaccard missing")
def test_the_same_with_k_reciprocal_jaccard_distances():
    from reid.cluster.jaccard import jaccard_distance

    orig, translated, is_ir, identity = synthetic_two_modality_features()
    features = mixed_modal_features(orig, translated, is_ir, unify="vis")
    labels = cluster_labels(jaccard_distance(features, k1=10, k2=4), eps=0.6, min_samples=4)
    assert adjusted_rand_score(identity, labels) == 1.0
    separate = cluster_labels(jaccard_distance(torch.nn.functional.normalize(orig, dim=1), k1=10, k2=4),
                              eps=0.6, min_samples=4)
    assert summarize_clusters(separate, is_ir).mixed_clusters == 0


def test_center_removes_the_offset_between_modality_groups():
    """Unified features of one identity differ only by a group offset (translated vs real images):
    centring each modality group makes a visible image and an infrared image of one identity coincide."""
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    offset = torch.tensor([0.0, 0.0, 3.0])
    orig = torch.cat([identity, identity])  # rows: vis id0, vis id1, ir id0, ir id1
    translated = torch.cat([identity + offset, identity + offset])  # the views carry the gap
    modality = ["vis", "vis", "ir", "ir"]
    plain = mixed_modal_features(orig, translated, modality, unify="ir")
    centered = mixed_modal_features(orig, translated, modality, unify="ir", center=True)
    assert float(plain[0] @ plain[2]) < 0.5  # vis id0 (its view, with the offset) vs real ir id0
    torch.testing.assert_close(centered[0], centered[2])
    torch.testing.assert_close(centered[1], centered[3])
    torch.testing.assert_close(centered.norm(dim=1), torch.ones(4))
