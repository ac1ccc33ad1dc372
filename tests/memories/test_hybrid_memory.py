"""HybridMemory against PCLHD's `CM_Hybrid` and `ClusterMemory(mode='CMhybrid')` / mode 'CMhard' with
model_name 'encoder' (shijiangming1/PCLHD clustercontrast/models/cm.py:41-83 and 157-183; initialisation
`F.normalize(cluster_features.repeat(2, 1))`, train_sysu.py:920-931), transcribed in reference_memories.py:
the loss 0.5 * (CE(hard) + relu(CE(mean) - 0.2)) with the relu active and inactive, its gradient, and the update
(centroid towards the members' mean, hard slot towards the member least similar to the centroid slot measured
before the centroid moves)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid.memories import HybridMemory
from reference_memories import (RefPCLHDMemory, generate_cluster_features, our_step, random_unit, reference_step,
                                unit)


def memory_with(prototypes, momentum=0.1, temperature=0.05, **options) -> HybridMemory:
    memory = HybridMemory(prototypes.shape[1], prototypes.shape[0] // 2, momentum=momentum, temperature=temperature,
                          **options)
    memory.prototypes = prototypes.clone()
    return memory


def pick_update(prototypes, features, labels, momentum, measure):
    """The hybrid update with the hardest member chosen another way (to show a case discriminates):
    measure = "hard_slot" (similarity to the hard prototype) or "moved_centroid" (to the centroid after its step)."""
    num = prototypes.shape[0] // 2
    after = prototypes.clone()
    inputs = unit(features)
    for cluster in torch.unique(labels[labels >= 0]).tolist():
        members = inputs[labels == cluster]
        after[cluster] = F.normalize(momentum * prototypes[cluster] + (1 - momentum) * members.mean(0), dim=0)
        against = prototypes[cluster + num] if measure == "hard_slot" else after[cluster]
        hardest = members[torch.argmin(members @ against)]
        after[cluster + num] = F.normalize(momentum * prototypes[cluster + num] + (1 - momentum) * hardest, dim=0)
    return after


@pytest.mark.parametrize("mode", ["CMhybrid", "CMhard"])
@pytest.mark.parametrize("seed, momentum, temperature", [(0, 0.1, 0.05), (2, 0.5, 0.05), (1, 0.2, 0.5)])
def test_loss_gradient_and_update_equal_reference_cm_hybrid(mode, seed, momentum, temperature):
    generator = torch.Generator().manual_seed(seed)
    prototypes = random_unit(10, 8, generator)  # 5 clusters: distinct centroid and hard halves
    features = 2 * torch.randn(18, 8, generator=generator)
    labels = torch.tensor([1, -1, 0, 1, 2, 0, 1, 3, -1, 0, 2, 1, 0, 3, 1, 0, 2, 3])  # cluster 4 absent
    ours = memory_with(prototypes, momentum, temperature)
    loss, grad, after = our_step(ours, features, labels)
    reference = RefPCLHDMemory(prototypes, mode=mode, temp=temperature, momentum=momentum)
    ref_loss, ref_grad, ref_after = reference_step(reference, features, labels)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(after, ref_after, rtol=0, atol=1e-6)
    torch.testing.assert_close(after[[4, 9]], prototypes[[4, 9]], rtol=0, atol=0)  # absent: both slots untouched
    keep = labels >= 0
    for measure in ("hard_slot", "moved_centroid"):  # the case tells the hardness rule apart
        assert not torch.allclose(pick_update(prototypes, features[keep], labels[keep], momentum, measure),
                                  ref_after, atol=1e-4), measure


@pytest.mark.parametrize("noise, temperature, active", [(0.02, 0.3, False), (0.02, 0.05, False), (0.6, 0.05, True),
                                                        (0.8, 0.3, True)])
def test_margin_relu_active_and_inactive(noise, temperature, active):
    """Features near their orthonormal centroids: CE(mean) below the margin 0.2 (relu off: only the hard half's CE
    and gradient), or above it."""
    generator = torch.Generator().manual_seed(3)
    centroids = torch.eye(3, 6)
    hard = unit(centroids + 0.3 * torch.randn(3, 6, generator=generator))
    prototypes = torch.cat([centroids, hard])
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    features = unit(centroids[labels] + noise * torch.randn(8, 6, generator=generator))
    inputs = unit(features)
    mean_ce = F.cross_entropy(inputs @ centroids.t() / temperature, labels).item()
    hard_ce = F.cross_entropy(inputs @ hard.t() / temperature, labels).item()
    assert (mean_ce > 0.2) == active and (not active or mean_ce < 10)
    ours = memory_with(prototypes, temperature=temperature)
    loss, grad, after = our_step(ours, features, labels)
    ref_loss, ref_grad, ref_after = reference_step(RefPCLHDMemory(prototypes, temp=temperature), features, labels)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6, abs=1e-9)
    assert loss.item() == pytest.approx(0.5 * (hard_ce + max(mean_ce - 0.2, 0.0)), rel=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(after, ref_after, rtol=0, atol=1e-6)
    if not active and temperature == 0.3:  # a margin of 0 would add 0.5 * CE(mean) here
        assert mean_ce > 0.01


def test_margin_is_a_parameter_with_the_reference_default():
    assert HybridMemory(4, 2).margin == 0.2
    generator = torch.Generator().manual_seed(1)
    prototypes = random_unit(4, 4, generator)
    features, labels = random_unit(6, 4, generator), torch.tensor([0, 1, 0, 1, 1, 0])
    zero, default = memory_with(prototypes, margin=0.0), memory_with(prototypes)
    difference = zero.loss(features, labels) - default.loss(features, labels)
    assert difference.item() == pytest.approx(0.1, rel=1e-5)  # both relu's active: 0.5 * 0.2


def test_init_both_halves_are_the_normalised_centroid():
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(15, 5, generator=generator)
    labels = torch.tensor([0, 1, 2, -1, 2, 1, 0, 0, 1, 2, -1, 0, 3, 3, 3])
    cluster_features = generate_cluster_features(labels.tolist(), features)
    expected = F.normalize(cluster_features.repeat(2, 1), dim=1)  # train_sysu.py's CMhybrid / CMhard proxies
    memory = HybridMemory.from_features(features, labels)
    torch.testing.assert_close(memory.prototypes, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(memory.centroids, expected[:4])
    torch.testing.assert_close(memory.hard, expected[4:])
    from_centroids = HybridMemory.from_centroids(cluster_features)
    torch.testing.assert_close(from_centroids.prototypes, expected, rtol=0, atol=1e-6)
    assert from_centroids.prototypes.shape == (8, 5)


def test_two_calls_in_one_graph_update_like_the_reference():
    """PCLHD's memory_all is called on the infrared rows, then the visible rows: the backward runs the visible
    call's update first; ours: update(visible), then update(infrared)."""
    generator = torch.Generator().manual_seed(9)
    prototypes = random_unit(6, 5, generator)
    ir, vis = random_unit(6, 5, generator), random_unit(8, 5, generator)
    labels_ir, labels_vis = torch.tensor([0, 1, 0, 2, 1, 0]), torch.tensor([2, 2, 0, 1, 1, 0, 2, 0])
    reference = RefPCLHDMemory(prototypes)
    ref_loss = reference(ir.clone().requires_grad_(), labels_ir) + reference(vis.clone().requires_grad_(), labels_vis)
    ref_loss.backward()
    ours = memory_with(prototypes)
    loss = ours.loss(ir, labels_ir) + ours.loss(vis, labels_vis)
    ours.update(vis, labels_vis)
    ours.update(ir, labels_ir)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    torch.testing.assert_close(ours.prototypes, reference.features, rtol=0, atol=1e-6)
