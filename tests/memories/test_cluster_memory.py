"""ClusterMemory against cluster-contrast's `CM` as ADCA / PGM / PCLHD copy it (ADCA and PGM
clustercontrast/models/cm.py:9-36 `CM` and cm.py:78-100 `ClusterMemory.forward`; the memory's initialisation
`F.normalize(generate_cluster_features(...))`, e.g. PGM train_sysu.py:732-743 and 792-797), transcribed in
reference_memories.py: loss, gradient, memory after the update; plus the memory's own contract (validation,
temperature, autocast, autograd isolation, state round trip; ported from the former tests/test_memory.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid.memories import ClusterMemory
from reference_memories import RefClusterMemory, generate_cluster_features, our_step, random_unit, reference_step

# Two 3-member clusters in 2-D, one outlier (label -1) that must not move any centroid.
FEATURES = torch.tensor([[0.6, 0.8],     # 0
                         [-0.6, -0.8],   # 1
                         [1.0, 0.0],     # 0
                         [-0.7071, 0.7071],  # -1
                         [0.0, -1.0],    # 1
                         [0.8, 0.6],     # 0
                         [-0.8, -0.6]])  # 1
LABELS = torch.tensor([0, 1, 0, -1, 1, 0, 1])


def memory_with(prototypes, momentum=0.1, temperature=0.05) -> ClusterMemory:
    memory = ClusterMemory(prototypes.shape[1], prototypes.shape[0], momentum=momentum, temperature=temperature)
    memory.load_state_dict({"prototypes": prototypes})
    return memory


def random_batch(seed: int, batch: int = 10, clusters: int = 5, dim: int = 8):
    """(prototypes [C, D] unit, features [B, D] NOT unit (the memories normalise), labels [B]): repeated labels,
    -1 rows, and cluster C - 1 absent from the batch."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = random_unit(clusters, dim, generator)
    features = 3 * torch.randn(batch, dim, generator=generator)
    labels = torch.randint(-1, clusters - 1, (batch,), generator=generator)
    labels[:4] = torch.tensor([-1, 0, 1, 0])  # an outlier, a repeated label
    return prototypes, features, labels


# --------------------------------------------------------------------------- against the reference's CM


@pytest.mark.parametrize("seed, momentum, temperature", [(0, 0.1, 0.05), (1, 0.5, 0.05), (2, 0.2, 0.5), (3, 0.9, 0.1)])
def test_loss_gradient_and_update_equal_reference_cm(seed, momentum, temperature):
    prototypes, features, labels = random_batch(seed)
    ours = memory_with(prototypes, momentum=momentum, temperature=temperature)
    reference = RefClusterMemory(prototypes, temp=temperature, momentum=momentum)
    loss, grad, after = our_step(ours, features, labels)
    ref_loss, ref_grad, ref_after = reference_step(reference, features, labels)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    assert torch.all(grad[labels < 0] == 0)
    torch.testing.assert_close(after, ref_after, rtol=0, atol=1e-6)
    absent = prototypes.shape[0] - 1
    assert absent not in labels.tolist()
    torch.testing.assert_close(after[absent], prototypes[absent], rtol=0, atol=0)  # untouched


def test_repeated_labels_update_per_instance_in_batch_order_like_the_reference():
    """Many rows per label, interleaved: the reference's loop updates one instance at a time in batch order."""
    generator = torch.Generator().manual_seed(11)
    prototypes = random_unit(4, 6, generator)
    features = random_unit(14, 6, generator)
    labels = torch.tensor([2, 0, 2, -1, 2, 2, 0, 1, 1, 2, -1, 0, 2, 1])
    ours = memory_with(prototypes, momentum=0.3)
    ours.update(features, labels)
    _, _, ref_after = reference_step(RefClusterMemory(prototypes, momentum=0.3), features, labels)
    torch.testing.assert_close(ours.prototypes, ref_after, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.prototypes[3], prototypes[3], rtol=0, atol=0)
    # the order matters: the batch reversed ends elsewhere
    flipped = memory_with(prototypes, momentum=0.3)
    flipped.update(features.flip(0), labels.flip(0))
    assert not torch.allclose(flipped.prototypes, ours.prototypes, atol=1e-3)


def test_init_equals_the_references_normalised_cluster_means():
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(20, 6, generator=generator)
    labels = torch.tensor([0, 1, 2, -1, 0, 1, 2, 3, 3, -1, 0, 1, 2, 3, 0, 1, -1, 2, 3, 0])
    memory = ClusterMemory.from_features(features, labels)
    expected = F.normalize(generate_cluster_features(labels.tolist(), features), dim=1)
    torch.testing.assert_close(memory.prototypes, expected, rtol=0, atol=1e-6)
    centroids = ClusterMemory.from_centroids(generate_cluster_features(labels.tolist(), features))
    torch.testing.assert_close(centroids.prototypes, expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- hand values and the contract


def test_centroid_init_is_the_normalised_mean():
    memory = ClusterMemory.from_features(FEATURES, LABELS)
    # cluster 0: mean of [0.6, 0.8], [1, 0], [0.8, 0.6] = [2.4, 1.4] / 3 -> [2.4, 1.4] / sqrt(7.72)
    expected = torch.tensor([[2.4, 1.4], [-1.4, -2.4]]) / 7.72 ** 0.5
    torch.testing.assert_close(memory.prototypes, expected)
    assert memory.prototypes.shape == (2, 2) and not memory.prototypes.requires_grad


def test_centroid_init_accepts_numpy_labels():
    memory = ClusterMemory.from_features(FEATURES, LABELS.numpy().astype(np.int32))
    assert memory.num_clusters == 2 and memory.num_features == 2


@pytest.mark.parametrize("labels, match", [([0, 2, 2], "relabel_consecutive"), ([1, 1, 2], "relabel_consecutive"),
                                           ([-1, -1, -1], "no cluster"), ([0, -2, 0], ">= 0 or -1")])
def test_from_features_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        ClusterMemory.from_features(torch.eye(3), torch.tensor(labels))


def test_constructor_and_batches_reject_bad_settings():
    with pytest.raises(ValueError, match="temperature"):
        ClusterMemory(2, 2, temperature=0.0)
    with pytest.raises(ValueError, match="momentum"):
        ClusterMemory(2, 2, momentum=1.5)
    memory = ClusterMemory(2, 2)
    with pytest.raises(ValueError, match=r"must lie in -1\.\.1"):
        memory.update(torch.eye(2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="integer cluster ids"):
        memory.update(torch.eye(2), torch.tensor([0.0, 1.0]))


def test_logits_are_scaled_by_temperature():
    memory = ClusterMemory.from_features(FEATURES, LABELS, temperature=0.1)
    features = F.normalize(torch.tensor([[1.0, 2.0], [-3.0, 1.0]]), dim=1)
    torch.testing.assert_close(memory.logits(features), features @ memory.prototypes.t() * 10)
    colder = ClusterMemory.from_features(FEATURES, LABELS, temperature=0.05)
    torch.testing.assert_close(colder.logits(features), 2 * memory.logits(features))


def test_logits_and_loss_of_bf16_features_under_autocast_are_float32_values():
    """bf16 features, float32 arithmetic: a bf16 matmul would put the logits off by up to ~0.1 at temperature 0.05."""
    generator = torch.Generator().manual_seed(4)
    prototypes = random_unit(5, 64, generator)
    features = random_unit(10, 64, generator)
    labels = torch.tensor([-1, 0, 1, 2, 3, 4, 0, 1, -1, 2])
    memory = memory_with(prototypes)
    low = features.bfloat16()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = memory.logits(low)
        loss = memory.loss(low, labels)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    exact_logits = F.normalize(low.double(), dim=1) @ prototypes.double().t() / 0.05
    torch.testing.assert_close(logits.double(), exact_logits, rtol=0, atol=1e-4)
    keep = labels >= 0
    exact_loss = F.cross_entropy(exact_logits[keep], labels[keep])
    assert loss.item() == pytest.approx(exact_loss.item(), rel=1e-5)


def test_loss_hand_value_ignores_outliers():
    """Prototypes e0, e1 at temperature 0.5: feature e0 has logits (2, 0), feature e1 has (0, 2); both labelled 0:
    (log(1 + e^-2) + log(1 + e^2)) / 2 = 1 + log(1 + e^-2). The outlier row does not count."""
    memory = memory_with(torch.eye(2), temperature=0.5)
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    loss = memory.loss(features, torch.tensor([0, 0, -1]))
    assert loss.item() == pytest.approx(1 + math.log(1 + math.exp(-2)), rel=1e-6)
    with pytest.raises(ValueError, match=r"features must be \[B, 2\]"):
        memory.loss(torch.eye(3), torch.tensor([0, 1, 0]))


def test_centroid_update_hand_values():
    prototypes = torch.eye(2)  # p0 = [1, 0], p1 = [0, 1]
    memory = memory_with(prototypes)
    f_a, f_b = torch.tensor([0.0, 1.0]), torch.tensor([0.6, 0.8])
    memory.update(torch.stack([f_a, torch.tensor([1.0, 0.0]), f_b]), torch.tensor([0, -1, 0]))
    # p0 <- normalize(0.1 * [1, 0] + 0.9 * f_a) = [0.1104, 0.9939]; then with f_b -> [0.5580, 0.8298]
    torch.testing.assert_close(memory.prototypes[0], torch.tensor([0.5580, 0.8298]), atol=1e-4, rtol=0)
    torch.testing.assert_close(memory.prototypes[1], prototypes[1])  # label 1 not in the batch; -1 ignored


def test_update_leaves_autograd_alone_and_backward_does_not_update():
    memory = ClusterMemory.from_features(FEATURES, LABELS)
    before = memory.prototypes.clone()
    features = F.normalize(torch.tensor([[1.0, 0.2], [-0.3, -1.0], [0.5, 0.5]]), dim=1).requires_grad_()
    labels = torch.tensor([0, 1, -1])
    memory.loss(features, labels).backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    torch.testing.assert_close(memory.prototypes, before, rtol=0, atol=0)  # backward updates nothing
    memory.update(features, labels)
    assert features.requires_grad and features.grad_fn is None
    assert not memory.prototypes.requires_grad and memory.prototypes.grad_fn is None
    assert not torch.allclose(memory.prototypes, before)
    torch.testing.assert_close(memory.prototypes.norm(dim=1), torch.ones(2))


def test_state_round_trip_through_weights_only_load(tmp_path):
    memory = ClusterMemory.from_features(FEATURES, LABELS)
    torch.save(memory.state_dict(), tmp_path / "memory.pt")
    restored = ClusterMemory(2, 2)
    restored.load_state_dict(torch.load(tmp_path / "memory.pt", weights_only=True))
    torch.testing.assert_close(restored.prototypes, memory.prototypes, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"this memory needs \(3, 2\)"):
        ClusterMemory(2, 3).load_state_dict(memory.state_dict())
    with pytest.raises(ValueError, match="'prototypes' tensor"):
        restored.load_state_dict({})


def test_empty_or_all_outlier_batch_is_a_no_op():
    memory = ClusterMemory.from_features(FEATURES, LABELS)
    before = memory.prototypes.clone()
    empty = torch.zeros(0, 2, requires_grad=True)
    assert memory.loss(empty, torch.zeros(0, dtype=torch.int64)).item() == 0.0
    memory.update(empty, torch.zeros(0, dtype=torch.int64))
    outliers = FEATURES[:2].clone().requires_grad_()
    loss = memory.loss(outliers, torch.tensor([-1, -1]))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(outliers.grad == 0)
    memory.update(FEATURES[:2], torch.tensor([-1, -1]))
    torch.testing.assert_close(memory.prototypes, before, rtol=0, atol=0)
