"""HardClusterMemory against ADCA's / PGM's `CM_Hard` (ADCA and PGM clustercontrast/models/cm.py:39-75, used by
`ClusterMemory(use_hard=True)`, cm.py:78-100; PGM train_sysu.py:792-797 builds it from the normalised cluster
means), transcribed in reference_memories.py: loss, gradient, memory after the update (once per cluster, its
batch member least similar to the cluster's CURRENT prototype, np.argmin: the first on ties)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid.memories import HardClusterMemory
from reference_memories import (RefClusterMemory, generate_cluster_features, our_step, random_unit, reference_step,
                                unit)


def memory_with(prototypes, momentum=0.1, temperature=0.05) -> HardClusterMemory:
    memory = HardClusterMemory(prototypes.shape[1], prototypes.shape[0], momentum=momentum, temperature=temperature)
    memory.prototypes = prototypes.clone()
    return memory


@pytest.mark.parametrize("seed, momentum, temperature", [(0, 0.1, 0.05), (1, 0.5, 0.05), (2, 0.2, 0.5), (3, 0.9, 0.1)])
def test_loss_gradient_and_update_equal_reference_cm_hard(seed, momentum, temperature):
    generator = torch.Generator().manual_seed(seed)
    prototypes = random_unit(5, 8, generator)
    features = 2 * torch.randn(16, 8, generator=generator)  # not unit: both normalise
    labels = torch.tensor([1, -1, 0, 1, 2, 0, 1, 3, -1, 0, 2, 1, 0, 3, 1, 0])  # cluster 4 absent
    ours = memory_with(prototypes, momentum, temperature)
    loss, grad, after = our_step(ours, features, labels)
    ref_loss, ref_grad, ref_after = reference_step(RefClusterMemory(prototypes, temperature, momentum, use_hard=True),
                                                   features, labels)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(after, ref_after, rtol=0, atol=1e-6)
    torch.testing.assert_close(after[4], prototypes[4], rtol=0, atol=0)
    # the case discriminates: the most similar member (or the first one) would end elsewhere for some cluster
    inputs = unit(features)
    for pick in (torch.argmax, lambda s: torch.tensor(0)):
        moved = prototypes.clone()
        for cluster in range(4):
            rows = torch.nonzero(labels == cluster).squeeze(1)
            row = rows[pick(inputs[rows] @ prototypes[cluster])]
            moved[cluster] = F.normalize(momentum * prototypes[cluster] + (1 - momentum) * inputs[row], dim=0)
        assert not torch.allclose(moved, ref_after, atol=1e-4)


def test_ties_pick_the_first_member_as_np_argmin():
    """Mirror images about the prototype e0 are exactly as similar to it: the first in batch order is taken."""
    prototypes = torch.eye(3)
    first, second = torch.tensor([0.6, 0.8, 0.0]), torch.tensor([0.6, -0.8, 0.0])
    for order in ([first, second], [second, first]):
        features = torch.stack([torch.tensor([0.9, 0.0, 0.43589]), *order])
        labels = torch.tensor([0, 0, 0])
        ours = memory_with(prototypes)
        ours.update(features, labels)
        _, _, ref_after = reference_step(RefClusterMemory(prototypes, use_hard=True), features, labels)
        torch.testing.assert_close(ours.prototypes, ref_after, rtol=0, atol=1e-6)
        torch.testing.assert_close(ours.prototypes[0], F.normalize(0.1 * prototypes[0] + 0.9 * order[0], dim=0))


def test_hardness_is_measured_against_the_current_prototype():
    """Two calls in one reference graph: the later call's backward runs first and moves the prototype, the earlier
    call's backward then picks its hardest member against the moved prototype; ours: update(later), update(earlier)."""
    generator = torch.Generator().manual_seed(7)
    prototypes = random_unit(3, 6, generator)
    batch_a, batch_b = random_unit(8, 6, generator), random_unit(6, 6, generator)
    labels_a, labels_b = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), torch.tensor([0, 0, 1, 1, 2, 2])
    reference = RefClusterMemory(prototypes, momentum=0.1, use_hard=True)
    (reference(batch_a.clone().requires_grad_(), labels_a) + reference(batch_b.clone().requires_grad_(), labels_b)
     ).backward()
    ours = memory_with(prototypes)
    ours.update(batch_b, labels_b)
    ours.update(batch_a, labels_a)
    torch.testing.assert_close(ours.prototypes, reference.features, rtol=0, atol=1e-6)
    stale = memory_with(prototypes)  # batch a's hardest measured against the prototypes before batch b moved them
    hardest = [int(torch.nonzero(labels_a == c).squeeze(1)[torch.argmin(batch_a[labels_a == c] @ prototypes[c])])
               for c in range(3)]
    stale.update(batch_b, labels_b)
    stale.momentum_step(torch.arange(3), batch_a[hardest])
    assert not torch.allclose(stale.prototypes, reference.features, atol=1e-4)


def test_hard_update_hand_value_uses_the_least_similar_member_once():
    prototypes = torch.eye(2)
    memory = memory_with(prototypes)
    # label 0 similarities to p0 = [1, 0]: 0.8, 0.6, 1.0 -> [0.6, 0.8] is picked, once
    features = torch.tensor([[0.8, 0.6], [0.6, 0.8], [1.0, 0.0], [0.0, -1.0]])
    memory.update(features, torch.tensor([0, 0, 0, -1]))
    torch.testing.assert_close(memory.prototypes[0], F.normalize(torch.tensor([0.64, 0.72]), dim=0))
    torch.testing.assert_close(memory.prototypes[1], prototypes[1])


def test_init_is_the_normalised_cluster_mean():
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(12, 4, generator=generator)
    labels = torch.tensor([0, 1, 2, -1, 2, 1, 0, 0, 1, 2, -1, 0])
    memory = HardClusterMemory.from_features(features, labels)
    torch.testing.assert_close(memory.prototypes, F.normalize(generate_cluster_features(labels.tolist(), features),
                                                              dim=1), rtol=0, atol=1e-6)
