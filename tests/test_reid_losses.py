"""Losses: hand-computed cluster NCE (a ClusterMemory's loss) and cross-view NCE."""
from __future__ import annotations

import math

import pytest
import torch

from reid.losses import cross_view_nce
from reid.memories import ClusterMemory


def cluster_nce(features: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor, temperature: float):
    """ClusterNCE of unit features [B, D] against fixed prototypes [C, D]: a ClusterMemory holding them."""
    memory = ClusterMemory(prototypes.shape[1], prototypes.shape[0], temperature=temperature)
    memory.load_state_dict({"prototypes": prototypes})
    return memory.loss(features, labels)


def test_cluster_nce_hand_example():
    # f1 = [1, 0], f2 = [0, 1]; p0 = [1, 0], p1 = [0, 1]; t = 0.5 -> logits [[2, 0], [0, 2]].
    # Both labelled 0:  row 1: -log(e^2 / (e^2 + e^0)) = log(1 + e^-2) = 0.126928
    #                   row 2: -log(e^0 / (e^0 + e^2)) = log(1 + e^2)  = 2.126928
    # mean = (log(1 + e^-2) + log(1 + e^2)) / 2 = log(1 + e^2) - 1 = 1.126928
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    prototypes = torch.eye(2)
    loss = cluster_nce(features, prototypes, torch.tensor([0, 0]), temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.e ** 2) - 1) == pytest.approx(1.126928, abs=1e-6)


def test_cluster_nce_ignores_outlier_rows():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    loss = cluster_nce(features, torch.eye(2), torch.tensor([0, -1, 0]), temperature=0.5)
    # row 2 (-1) is dropped; t = 0.5. Row 1 logits [2, 0], label 0: log(1 + e^-2).
    # Row 3 logits [1.2, 1.6], label 0: -log(e^1.2 / (e^1.2 + e^1.6)) = log(1 + e^0.4). Loss = their mean.
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-2)) + math.log(1 + math.exp(0.4))) / 2)


def test_cluster_nce_all_outliers_is_zero_with_grad():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = cluster_nce(features, torch.eye(2), torch.tensor([-1, -1]), temperature=0.05)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(features.grad, torch.zeros(2, 2))


@pytest.mark.parametrize("labels", [[0, 2], [0, -2]])
def test_cluster_nce_rejects_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"-1\.\.1"):
        cluster_nce(torch.eye(2), torch.eye(2), torch.tensor(labels), temperature=0.05)


def test_cluster_nce_rejects_bad_temperature_and_shapes():
    with pytest.raises(ValueError, match="temperature"):
        cluster_nce(torch.eye(2), torch.eye(2), torch.tensor([0, 1]), temperature=0.0)
    with pytest.raises(ValueError, match=r"features must be \[B, 3\]"):
        cluster_nce(torch.eye(2), torch.eye(3), torch.tensor([0, 1]), temperature=0.05)


def test_cross_view_nce_aligned_views_are_near_zero():
    features = torch.eye(4)
    # logits: 20 on the diagonal, 0 elsewhere -> each CE = log(1 + 3 e^-20) ~ 6e-9
    assert cross_view_nce(features, features.clone(), temperature=0.05).item() == pytest.approx(0.0, abs=1e-7)


def test_cross_view_nce_two_sample_hand_example():
    # f1 = [1, 0], f2 = [0, 1]; v1 = [1, 0], v2 = [0.6, 0.8]; t = 1.
    # f @ v.T = [[1, 0.6], [0, 0.8]]: row 1 (target 0) log(1 + e^-0.4), row 2 (target 1) log(1 + e^-0.8)
    # v @ f.T = [[1, 0], [0.6, 0.8]]: row 1 (target 0) log(1 + e^-1),   row 2 (target 1) log(1 + e^-0.2)
    # loss = the mean of the four = 0.448879
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    views = torch.tensor([[2.0, 0.0], [1.8, 2.4]])  # normalised inside: [1, 0], [0.6, 0.8]
    expected = sum(math.log(1 + math.exp(-x)) for x in (0.4, 0.8, 1.0, 0.2)) / 4
    assert cross_view_nce(features, views, temperature=1.0).item() == pytest.approx(expected)
    assert expected == pytest.approx(0.448879, abs=1e-6)


def test_cross_view_nce_is_symmetric():
    generator = torch.Generator().manual_seed(0)
    features, views = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    assert cross_view_nce(features, views).item() == pytest.approx(cross_view_nce(views, features).item())


def test_cross_view_nce_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="view_features"):
        cross_view_nce(torch.eye(2), torch.eye(3))


def test_cross_view_nce_keeps_same_cluster_views_out_of_the_negatives():
    """Transcription of the rule, one row at a time: row i's denominator holds its own view and the views of
    images of other clusters (outliers, -1, are each their own cluster); symmetric over images and views."""
    generator = torch.Generator().manual_seed(3)
    features, views = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    labels = torch.tensor([0, 0, 1, -1, -1, 1])
    f, v = torch.nn.functional.normalize(features, dim=1), torch.nn.functional.normalize(views, dim=1)

    def one_direction(a, b):
        total = 0.0
        for i in range(6):
            keep = [j for j in range(6) if j == i or labels[j] == -1 or labels[j] != labels[i]]
            logits = a[i] @ b[keep].T / 0.1
            total += -(logits[keep.index(i)] - torch.logsumexp(logits, 0))
        return total / 6

    expected = (one_direction(f, v) + one_direction(v, f)) / 2
    masked = cross_view_nce(features, views, temperature=0.1, labels=labels)
    assert masked.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = cross_view_nce(features, views, temperature=0.1)
    assert masked.item() < plain.item()  # fewer negatives
    every_image_alone = cross_view_nce(features, views, temperature=0.1, labels=torch.full((6,), -1))
    assert every_image_alone.item() == pytest.approx(plain.item(), rel=1e-6)
