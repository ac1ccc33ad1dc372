"""Cluster memory: hand-made initialisation and update rules, the loss and its gradient against cluster-contrast's
ClusterMemory written out here, autograd isolation, temperature, state round trip."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid.memory import ClusterMemory

# Two 3-member clusters in 2-D, one outlier (label -1) that must not move any centroid.
FEATURES = torch.tensor([[0.6, 0.8],     # 0
                         [-0.6, -0.8],   # 1
                         [1.0, 0.0],     # 0  least similar to centroid 0 (cos 0.864 vs 0.921, 0.993)
                         [-0.7071, 0.7071],  # -1
                         [0.0, -1.0],    # 1  least similar to centroid 1 (mirror image of cluster 0)
                         [0.8, 0.6],     # 0
                         [-0.8, -0.6]])  # 1
LABELS = torch.tensor([0, 1, 0, -1, 1, 0, 1])
MEMBERS = {0: [0, 2, 5], 1: [1, 4, 6]}


def memory_with(prototypes, prototype="centroid", momentum=0.1, generator=None, temperature=0.05) -> ClusterMemory:
    memory = ClusterMemory(prototypes.shape[1], prototypes.shape[0], prototype=prototype, momentum=momentum,
                           generator=generator, temperature=temperature)
    memory.load_state_dict({"prototypes": prototypes})
    return memory


def cluster_contrast_loss(features, labels, prototypes, temperature) -> torch.Tensor:
    """clustercontrast/models/cm.py, ClusterMemory.forward: F.cross_entropy(F.normalize(x) @ M.T / temp, y),
    on the rows with a cluster (cluster-contrast drops outliers before batching), in float64."""
    keep = labels >= 0
    x, prototypes = F.normalize(features[keep].double(), dim=1), prototypes.double()
    return F.cross_entropy(x @ prototypes.t() / temperature, labels[keep])


def random_batch(seed: int, batch: int = 10, clusters: int = 5, dim: int = 8):
    """(prototypes [C, D], features [B, D], labels [B] with -1 rows), all rows L2-normalised."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = F.normalize(torch.randn(clusters, dim, generator=generator), dim=1)
    features = F.normalize(torch.randn(batch, dim, generator=generator), dim=1)
    labels = torch.randint(-1, clusters, (batch,), generator=generator)
    labels[:2] = torch.tensor([-1, 0])  # at least one outlier and one clustered row
    return prototypes, features, labels


def test_centroid_init_is_the_normalised_mean():
    memory = ClusterMemory.from_features(FEATURES, LABELS, prototype="centroid")
    # cluster 0: mean of [0.6, 0.8], [1, 0], [0.8, 0.6] = [2.4, 1.4] / 3 -> [2.4, 1.4] / sqrt(7.72)
    expected = torch.tensor([[2.4, 1.4], [-1.4, -2.4]]) / 7.72 ** 0.5
    torch.testing.assert_close(memory.prototypes, expected)
    assert memory.prototypes.shape == (2, 2) and not memory.prototypes.requires_grad


def test_centroid_init_accepts_numpy_labels():
    memory = ClusterMemory.from_features(FEATURES, LABELS.numpy().astype(np.int32))
    assert memory.num_clusters == 2 and memory.num_features == 2


def test_hard_init_is_the_least_similar_member():
    memory = ClusterMemory.from_features(FEATURES, LABELS, prototype="hard")
    torch.testing.assert_close(memory.prototypes, FEATURES[[2, 4]])


def test_dynamic_init_is_a_seeded_random_member():
    first, again = (ClusterMemory.from_features(FEATURES, LABELS, prototype="dynamic",
                                                generator=torch.Generator().manual_seed(3)) for _ in range(2))
    torch.testing.assert_close(first.prototypes, again.prototypes)
    picks = set()
    for seed in range(20):
        memory = ClusterMemory.from_features(FEATURES, LABELS, prototype="dynamic",
                                             generator=torch.Generator().manual_seed(seed))
        rows = []
        for cluster, members in MEMBERS.items():
            matches = [row for row in members if torch.allclose(memory.prototypes[cluster], FEATURES[row], atol=1e-4)]
            assert len(matches) == 1, f"seed {seed}: prototype {cluster} is not a member of its cluster"
            rows.append(matches[0])
        picks.add(tuple(rows))
    assert len(picks) > 1  # the draw depends on the seed


@pytest.mark.parametrize("labels, match", [([0, 2, 2], "relabel_consecutive"), ([1, 1, 2], "relabel_consecutive"),
                                           ([-1, -1, -1], "no cluster"), ([0, -2, 0], ">= 0 or -1")])
def test_from_features_rejects_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        ClusterMemory.from_features(torch.eye(3), torch.tensor(labels))


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError, match="prototype must be one of"):
        ClusterMemory(2, 2, prototype="mean")
    with pytest.raises(ValueError, match="temperature"):
        ClusterMemory(2, 2, temperature=0.0)
    with pytest.raises(ValueError, match="momentum"):
        ClusterMemory(2, 2, momentum=1.5)


def test_logits_are_scaled_by_temperature():
    memory = ClusterMemory.from_features(FEATURES, LABELS, temperature=0.1)
    features = F.normalize(torch.tensor([[1.0, 2.0], [-3.0, 1.0]]), dim=1)
    torch.testing.assert_close(memory.logits(features), features @ memory.prototypes.t() * 10)
    colder = ClusterMemory.from_features(FEATURES, LABELS, temperature=0.05)
    torch.testing.assert_close(colder.logits(features), 2 * memory.logits(features))


def test_logits_and_loss_of_bf16_features_under_autocast_are_float32_values():
    """bf16 features, float32 arithmetic: a bf16 matmul would put the logits off by up to ~0.1 at temperature 0.05."""
    prototypes, features, labels = random_batch(seed=4, dim=64)
    memory = memory_with(prototypes)
    low = features.bfloat16()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = memory.logits(low)
        loss = memory.loss(low, labels)
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    exact_logits = low.double() @ prototypes.double().t() / 0.05
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


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_loss_matches_cluster_contrast(temperature):
    prototypes, features, labels = random_batch(seed=0)
    memory = memory_with(prototypes, temperature=temperature)
    expected = cluster_contrast_loss(features, labels, prototypes, temperature)
    assert memory.loss(features, labels).item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_gradient_is_softmax_minus_onehot_through_the_prototypes():
    """d loss / d x_i = (softmax(x_i M^T / t) - onehot(y_i)) M / t / B_valid; 0 for outlier rows."""
    temperature = 0.1
    prototypes, features, labels = random_batch(seed=1)
    memory = memory_with(prototypes, temperature=temperature)
    features = features.clone().requires_grad_()
    memory.loss(features, labels).backward()
    keep = labels >= 0
    probabilities = torch.softmax(features.detach().double() @ prototypes.double().t() / temperature, dim=1)
    onehot = F.one_hot(labels.clamp_min(0), prototypes.shape[0]).double()
    expected = (probabilities - onehot) @ prototypes.double() / temperature / int(keep.sum())
    expected[~keep] = 0.0
    torch.testing.assert_close(features.grad.double(), expected, rtol=1e-5, atol=1e-6)


def test_centroid_update_is_per_instance_in_batch_order():
    prototypes = torch.eye(2)  # p0 = [1, 0], p1 = [0, 1]
    memory = memory_with(prototypes)
    f_a, f_b = torch.tensor([0.0, 1.0]), torch.tensor([0.6, 0.8])
    memory.update(torch.stack([f_a, torch.tensor([1.0, 0.0]), f_b]), torch.tensor([0, -1, 0]))
    # p0 <- normalize(0.1 * [1, 0] + 0.9 * f_a) = [0.1104, 0.9939]; then with f_b -> [0.5580, 0.8298]
    step_a = F.normalize(0.1 * prototypes[0] + 0.9 * f_a, dim=0)
    step_b = F.normalize(0.1 * step_a + 0.9 * f_b, dim=0)
    torch.testing.assert_close(memory.prototypes[0], step_b)
    torch.testing.assert_close(memory.prototypes[0], torch.tensor([0.5580, 0.8298]), atol=1e-4, rtol=0)
    torch.testing.assert_close(memory.prototypes[1], prototypes[1])  # label 1 not in the batch; -1 ignored
    reversed_order = memory_with(prototypes)
    reversed_order.update(torch.stack([f_b, f_a]), torch.tensor([0, 0]))
    assert not torch.allclose(reversed_order.prototypes[0], memory.prototypes[0], atol=1e-3)


@pytest.mark.parametrize("momentum", [0.1, 0.7])
def test_centroid_update_interleaved_labels_matches_a_python_loop(momentum):
    generator = torch.Generator().manual_seed(1)
    prototypes = F.normalize(torch.randn(4, 8, generator=generator), dim=1)
    features = F.normalize(torch.randn(12, 8, generator=generator), dim=1)
    labels = torch.tensor([2, 0, 2, -1, 3, 2, 0, 3, 3, 2, -1, 0])
    memory = memory_with(prototypes, momentum=momentum)
    memory.update(features, labels)
    expected = prototypes.clone()
    for feature, label in zip(features, labels.tolist()):  # cluster-contrast's CM.backward loop
        if label >= 0:
            expected[label] = momentum * expected[label] + (1 - momentum) * feature
            expected[label] /= expected[label].norm()
    torch.testing.assert_close(memory.prototypes, expected)


def test_hard_update_uses_the_least_similar_member_once():
    prototypes = torch.eye(2)
    memory = memory_with(prototypes, prototype="hard")
    # label 0 similarities to p0 = [1, 0]: 0.8, 0.6, 1.0 -> [0.6, 0.8] is picked, once
    features = torch.tensor([[0.8, 0.6], [0.6, 0.8], [1.0, 0.0], [0.0, -1.0]])
    memory.update(features, torch.tensor([0, 0, 0, -1]))
    torch.testing.assert_close(memory.prototypes[0], F.normalize(torch.tensor([0.64, 0.72]), dim=0))
    torch.testing.assert_close(memory.prototypes[1], prototypes[1])


def test_dynamic_update_uses_a_seeded_member_of_batch_labels_only():
    generator = torch.Generator().manual_seed(0)
    prototypes = F.normalize(torch.randn(3, 4, generator=generator), dim=1)
    features = F.normalize(torch.randn(6, 4, generator=generator), dim=1)
    labels = torch.tensor([0, 2, 0, 0, -1, 2])
    candidates = {label: [F.normalize(0.1 * prototypes[label] + 0.9 * features[row], dim=0)
                          for row in range(6) if labels[row] == label] for label in (0, 2)}
    results, picks = [], set()
    for seed in (5, 5, *range(10)):
        memory = memory_with(prototypes, prototype="dynamic", generator=torch.Generator().manual_seed(seed))
        memory.update(features, labels)
        torch.testing.assert_close(memory.prototypes[1], prototypes[1])  # label 1 not in the batch
        pick = tuple(next(i for i, c in enumerate(candidates[label]) if torch.allclose(memory.prototypes[label], c))
                     for label in (0, 2))
        picks.add(pick)
        results.append(memory.prototypes)
    torch.testing.assert_close(results[0], results[1])  # same seed, same draw
    assert len(picks) > 1


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
    memory = ClusterMemory.from_features(FEATURES, LABELS, prototype="hard")
    torch.save(memory.state_dict(), tmp_path / "memory.pt")
    restored = ClusterMemory(2, 2, prototype="hard")
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
    memory.update(FEATURES[:2], torch.tensor([-1, -1]))
    torch.testing.assert_close(memory.prototypes, before, rtol=0, atol=0)
