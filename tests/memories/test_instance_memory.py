"""InstanceMemory against PCLHD's instance memory: `CM_Hard` with `features_ema` (shijiangming1/PCLHD
clustercontrast/models/cm.py:86-125, the 'encoder_ema' branch of `ClusterMemory.forward`, cm.py:184-191) and its
initialisation `F.normalize(generate_random_features(...))` (train_sysu.py:891-898 and 932-935), transcribed in
reference_memories.py. Random draws differ between torch and numpy, so the draws are checked by what they must
be (normalised members of the right cluster, distinct or not), and exactly wherever the draw is forced."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.memories import InstanceMemory
from reference_memories import (CMInstances, RefPCLHDMemory, generate_random_features, momentum_tensor, random_unit,
                                reference_step, unit)

K = 16  # the reference's instances per cluster and its literal `len(features) >= 16`


def memory_with(instances: torch.Tensor, num_instances: int = K, temperature: float = 0.05, seed: int = 0):
    """instances [K * C, D] in the reference's layout (row k * C + c)."""
    memory = InstanceMemory(instances.shape[1], instances.shape[0] // num_instances, num_instances=num_instances,
                            temperature=temperature, generator=torch.Generator().manual_seed(seed))
    memory.prototypes = instances.clone()
    return memory


def reference_memory(instances: torch.Tensor, num_instances: int = K, temperature: float = 0.05, seed: int = 0):
    num = instances.shape[0] // num_instances
    return RefPCLHDMemory(torch.zeros(2 * num, instances.shape[1]), mode="CMhard", temp=temperature,
                          features_ema=instances, num_instances=num_instances, rng=np.random.default_rng(seed))


def members_of(stored: torch.Tensor, candidates: torch.Tensor) -> list[int]:
    """The index in candidates [n, D] (unit rows) that each stored row [m, D] equals (asserted)."""
    similarity = stored @ candidates.t()
    best = similarity.argmax(dim=1)
    torch.testing.assert_close(stored, candidates[best], rtol=0, atol=1e-6)
    return best.tolist()


# --------------------------------------------------------------------------- initialisation


def test_init_layout_equals_the_reference_where_the_draw_is_forced():
    """Clusters of one member each: every draw is that member, so the whole memory is the reference's, row k*C + c
    holding cluster c."""
    generator = torch.Generator().manual_seed(0)
    features = 3 * torch.randn(6, 5, generator=generator)
    labels = np.array([2, -1, 0, 3, -1, 1])
    ours = InstanceMemory.from_features(features, labels, num_instances=4, generator=torch.Generator().manual_seed(1))
    expected = unit(generate_random_features(labels, features, 4, 4, np.random.default_rng(0)))
    torch.testing.assert_close(ours.prototypes, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.instances[3, 0], unit(features[2:3])[0], rtol=0, atol=1e-6)  # instance 3 of 0
    assert ours.prototypes.shape == (16, 5) and ours.instances.shape == (4, 4, 5)


def test_init_draws_normalised_members_of_each_cluster_with_replacement():
    generator = torch.Generator().manual_seed(2)
    sizes = [3, 20, 5]
    labels = torch.tensor(sum(([c] * n for c, n in enumerate(sizes)), []) + [-1, -1])
    features = 2 * torch.randn(len(labels), 6, generator=generator)
    draws = []
    for seed in (4, 4, 5):
        memory = InstanceMemory.from_features(features, labels, num_instances=K,
                                              generator=torch.Generator().manual_seed(seed))
        picks = []
        for cluster in range(3):
            members = torch.nonzero(labels == cluster).squeeze(1)
            stored = memory.prototypes[cluster::3]  # rows k * C + c, k = 0..K-1
            chosen = members_of(stored, unit(features[members]))
            assert len(set(chosen)) < K  # with replacement: forced for 3 and 5; for 20 all-distinct has p ~ 1.5e-4
            picks.append(tuple(chosen))
        draws.append(picks)
    assert draws[0] == draws[1] and draws[0] != draws[2]  # the memory's generator decides
    # the reference's rule has the same properties
    ref = unit(generate_random_features(labels.numpy(), features, 3, K, np.random.default_rng(0)))
    for cluster in range(3):
        members_of(ref[cluster::3], unit(features[labels == cluster]))


def test_from_centroids_is_refused():
    with pytest.raises(TypeError, match="from_features"):
        InstanceMemory.from_centroids(torch.randn(3, 4))


# --------------------------------------------------------------------------- loss


@pytest.mark.parametrize("num_instances, temperature, seed", [(16, 0.05, 0), (4, 0.05, 1), (3, 0.5, 2)])
def test_loss_and_gradient_equal_the_reference(num_instances, temperature, seed):
    generator = torch.Generator().manual_seed(seed)
    clusters = 4
    instances = random_unit(num_instances * clusters, 8, generator)
    features = 2 * torch.randn(12, 8, generator=generator)
    labels = torch.tensor([0, 1, -1, 2, 0, 1, 3, 0, -1, 2, 1, 0])
    ours = memory_with(instances, num_instances, temperature)
    inputs = features.clone().requires_grad_()
    loss = ours.loss(inputs, labels)
    loss.backward()
    ref_loss, ref_grad, _ = reference_step(reference_memory(instances, num_instances, temperature), features, labels,
                                           model_name="encoder_ema")
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(inputs.grad, ref_grad, rtol=1e-5, atol=1e-7)
    # the case tells the rule apart: the most similar own instance as the positive gives another loss
    keep = labels >= 0
    logits = (unit(features[keep]) @ instances.t() / temperature).view(-1, num_instances, clusters)
    own = torch.nn.functional.one_hot(labels[keep], clusters).bool()
    easy = torch.where(own, logits.max(dim=1).values, logits.max(dim=1).values)
    assert torch.nn.functional.cross_entropy(easy, labels[keep]).item() < ref_loss.item() - 0.1
    torch.testing.assert_close(ours.prototypes, instances, rtol=0, atol=0)  # the loss updates nothing


# --------------------------------------------------------------------------- update


def update_batch(seed: int):
    """Cluster 0: 20 batch members (>= K: K distinct), 1: exactly K (all of them, each once), 2: one (K copies),
    3: five (with replacement), 4: absent; two -1 rows; rows shuffled."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0] * 20 + [1] * K + [2] + [3] * 5 + [-1, -1])
    labels = labels[torch.randperm(len(labels), generator=generator)]
    features = 2 * torch.randn(len(labels), 6, generator=generator)
    instances = random_unit(K * 5, 6, generator)
    return instances, features, labels


def check_update(after: torch.Tensor, instances: torch.Tensor, features: torch.Tensor, labels: torch.Tensor):
    """Asserts the update's properties; returns {cluster: the batch rows stored, instance order}."""
    stored = {}
    for cluster in range(4):
        rows = torch.nonzero(labels == cluster).squeeze(1)
        chosen = members_of(after[cluster::5], unit(features[rows]))
        stored[cluster] = [int(rows[i]) for i in chosen]
    assert len(set(stored[0])) == K  # 20 members: K distinct ones
    assert sorted(stored[1]) == sorted(torch.nonzero(labels == 1).squeeze(1).tolist())  # K members: each once
    assert len(set(stored[2])) == 1 and len(set(stored[3])) < K  # with replacement
    torch.testing.assert_close(after[4::5], instances[4::5], rtol=0, atol=0)  # absent: untouched
    return stored


@pytest.mark.parametrize("seed", [0, 1])
def test_update_follows_the_reference_rule(seed):
    instances, features, labels = update_batch(seed)
    ours = memory_with(instances, seed=seed)
    ours.update(features, labels)
    ours_stored = check_update(ours.prototypes, instances, features, labels)
    reference = reference_memory(instances, seed=seed)
    reference_step(reference, features, labels, model_name="encoder_ema")
    ref_after = reference.features_ema
    ref_stored = check_update(ref_after, instances, features, labels)
    assert ours_stored[2] == ref_stored[2]  # the forced draw: identical
    again = memory_with(instances, seed=seed)
    again.update(features, labels)
    torch.testing.assert_close(again.prototypes, ours.prototypes, rtol=0, atol=0)  # seeded


def test_update_twice_in_one_graph_takes_the_later_call_first():
    """Two reference calls in one graph: the later call's backward writes first, the earlier one overwrites the
    clusters both hold; ours: update(later) then update(earlier). Clusters of one member make the draws forced."""
    generator = torch.Generator().manual_seed(3)
    instances = random_unit(4 * 3, 5, generator)
    first, second = random_unit(2, 5, generator), random_unit(2, 5, generator)
    labels_first, labels_second = torch.tensor([0, 1]), torch.tensor([1, 2])
    reference = reference_memory(instances, num_instances=4)
    momentum = momentum_tensor(0.1)
    outputs = [CMInstances.apply(x.clone().requires_grad_(), y, reference.features_ema, momentum, 4,
                                 np.random.default_rng(0)) for x, y in ((first, labels_first), (second, labels_second))]
    sum(o.sum() for o in outputs).backward()
    ours = memory_with(instances, num_instances=4)
    ours.update(second, labels_second)
    ours.update(first, labels_first)
    torch.testing.assert_close(ours.prototypes, reference.features_ema, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.instances[:, 1], first[1].expand(4, 5), rtol=0, atol=1e-6)
