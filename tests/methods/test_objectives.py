"""The methods' objectives against one iteration of the released trainers (reference_trainers.py, on the memories
of tests/memories/reference_memories.py, whose updates run inside autograd's backward):

- CrossModalObjective vs PGM clustercontrast/trainers.py:74-105 (loss_ir + loss_rgb + 0.25 * cross_loss, the
  direction alternating by epoch parity), with `CM_Hard` memories (PGM train_sysu.py:792-797) and `CM` memories
  (train_regdb.py:655-658), and with PCLHD's `CM_Hybrid` memories (PCLHD trainers.py:150-185, pass 1 of
  `ClusterContrastTrainer_PCLMP` without its EMA part);
- DynamicPrototypeObjective(released=True) vs the same pass 1 with the EMA teacher's features (trainers.py:172-181);
- MixedClusterObjective vs pass 2 (trainers.py:197-208), on a HybridMemory from `balanced_centroids`
  (= train_sysu.py:858-888) over the images `bimodal_rows` keeps (= train_sysu.py:352-380 and 969-981).
Compared: every loss term, the memories after our `update` vs the reference's after its backward, and the
gradients: under train.memory_update "in_backward" all of them; under "after_step" (the default) those of the
features whose memories the graph uses once (where a memory serves two terms, the reference's later backward reads
prototypes the earlier one already moved; "after_step" takes the gradient of the computed loss).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.cluster.matching import ClusterMatching
from reid.memories import ClusterMemory, HardClusterMemory, HybridMemory, InstanceMemory
from reid.methods.base import StepBatch
from reid.methods.parts import CrossModalObjective, IntraModalityObjective, ModalityMemories
from reid.methods.pclhd import DynamicPrototypeObjective, MixedClusterObjective, balanced_centroids, bimodal_rows
from reid.pseudo_labels import PseudoLabels
from reference_trainers import (RefClusterMemory, RefPCLHDMemory, bimodal_flags,
                                generate_modal_invariant_cluster_features, pclmp_all_iteration, pclmp_iteration,
                                pgm_iteration, reference_memories)

DIM = 8
NUM_VIS, NUM_IR = 5, 4
# a complete matching (as the reference's dicts must be for its trainer to run): visible 1 and 4 share infrared 0
VIS_TO_IR = np.array([2, 0, 3, 1, 0])
IR_TO_VIS = np.array([1, 3, 0, 2])
# the batch: visible clusters 0, 1, 2, 4 (3 absent: with infrared 1 absent too, neither moves in either parity),
# infrared clusters 0 and 3 (2 absent from the infrared rows, present through visible 0's partner in the cross term)
VIS_LABELS = [0, 1, 0, 2, 4, 1, 4, 0, 2]
IR_LABELS = [0, 3, 0, 3, 0, 3, 0]
IS_IR = [False, True, False, False, True, True, False, True, False, False, True, False, True, False, True, False]

MEMORIES = {"hard": (HardClusterMemory, dict(use_hard=True)), "centroid": (ClusterMemory, dict(use_hard=False))}


def scene(seed: int, rows_per_cluster: int = 1, noise: float = 0.7):
    """(vis prototypes, ir prototypes, features [B, D] unit near their clusters, side-by-side labels [B], is_ir)."""
    generator = torch.Generator().manual_seed(seed)
    vis = reference_memories.random_unit(rows_per_cluster * NUM_VIS, DIM, generator)
    ir = reference_memories.random_unit(rows_per_cluster * NUM_IR, DIM, generator)
    is_ir = torch.tensor(IS_IR)
    labels = torch.empty(len(IS_IR), dtype=torch.int64)
    labels[~is_ir] = torch.tensor(VIS_LABELS)
    labels[is_ir] = torch.tensor(IR_LABELS) + NUM_VIS
    centres = torch.where(is_ir.unsqueeze(1), ir[(labels - NUM_VIS).clamp_min(0)], vis[labels.clamp(max=NUM_VIS - 1)])
    features = reference_memories.unit(centres + noise * torch.randn(len(labels), DIM, generator=generator))
    return vis, ir, features, labels, is_ir


def matching(matched: bool = True) -> ClusterMatching:
    if matched:
        return ClusterMatching(VIS_TO_IR.copy(), IR_TO_VIS.copy())
    return ClusterMatching(np.full(NUM_VIS, -1), np.full(NUM_IR, -1))


def dicts(match: ClusterMatching):
    """The reference's r2i / i2r from a matching."""
    return ({v: int(i) for v, i in enumerate(match.vis_to_ir) if i >= 0},
            {i: int(v) for i, v in enumerate(match.ir_to_vis) if v >= 0})


UPDATES = ["after_step", "in_backward"]


def our_step(objective, batch: StepBatch, memory_update: str = "after_step"):
    """loss terms, d (sum of terms) / d features, then the explicit update (after the optimiser step), as the
    training loop's step under train.memory_update."""
    everyone = StepBatch(batch.features.detach(), batch.labels, batch.is_ir, teacher_features=batch.teacher_features)
    if memory_update == "in_backward":
        batch.update_batch = everyone
    terms = objective.loss(batch)
    sum(terms.values()).backward()
    objective.update(everyone)
    return {name: term.detach() for name, term in terms.items()}, batch.features.grad


def reference_inputs(features, labels, is_ir):
    """The trainer's f_out_rgb / labels_rgb / f_out_ir / labels_ir (per-modality labels), leaves of their own."""
    f_rgb = features[~is_ir].detach().clone().requires_grad_()
    f_ir = features[is_ir].detach().clone().requires_grad_()
    return f_rgb, labels[~is_ir], f_ir, labels[is_ir] - NUM_VIS


def check_gradients(grad, f_rgb, f_ir, is_ir, direction, memory_update="after_step"):
    """in_backward: every row. after_step: the rows whose memories the reference graph uses once: all of them
    without a cross term; the cross term's source modality with one (its target memory serves two terms)."""
    if memory_update == "in_backward":
        torch.testing.assert_close(grad[~is_ir], f_rgb.grad, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(grad[is_ir], f_ir.grad, rtol=1e-5, atol=1e-7)
        return
    if direction in (None, "vis"):
        torch.testing.assert_close(grad[~is_ir], f_rgb.grad, rtol=1e-5, atol=1e-7)
    if direction in (None, "ir"):
        torch.testing.assert_close(grad[is_ir], f_ir.grad, rtol=1e-5, atol=1e-7)
    if direction is not None:  # the deliberate difference: the reference's target rows read moved prototypes
        target = is_ir if direction == "vis" else ~is_ir
        assert not torch.allclose(grad[target], (f_ir if direction == "vis" else f_rgb).grad, atol=1e-6)


# --------------------------------------------------------------------------- PGM


@pytest.mark.parametrize("memory_update", UPDATES)
@pytest.mark.parametrize("memory", ["hard", "centroid"])
@pytest.mark.parametrize("epoch", [0, 1, 2, 3])
def test_cross_modal_objective_equals_pgm_trainer(memory, epoch, memory_update):
    memory_class, options = MEMORIES[memory]
    vis, ir, features, labels, is_ir = scene(seed=epoch)
    memories = ModalityMemories(memory_class.from_centroids(vis, momentum=0.1),
                                memory_class.from_centroids(ir, momentum=0.1), NUM_VIS)
    initial_vis, initial_ir = memories.vis.prototypes.clone(), memories.ir.prototypes.clone()
    objective = CrossModalObjective(memories, matching(), weight=0.25, stage_epoch=epoch)
    batch = StepBatch(features.clone().requires_grad_(), labels, is_ir)
    terms, grad = our_step(objective, batch, memory_update)

    memory_rgb, memory_ir = RefClusterMemory(vis, **options), RefClusterMemory(ir, **options)
    f_rgb, labels_rgb, f_ir, labels_ir = reference_inputs(features, labels, is_ir)
    ref = pgm_iteration(memory_ir, memory_rgb, f_rgb, labels_rgb, f_ir, labels_ir, epoch, *dicts(matching()))

    assert set(terms) == {"vis", "ir", "cross"}
    assert terms["vis"].item() == pytest.approx(ref["rgb"].item(), rel=1e-6)
    assert terms["ir"].item() == pytest.approx(ref["ir"].item(), rel=1e-6)
    assert terms["cross"].item() == pytest.approx(0.25 * ref["cross"].item(), rel=1e-6)
    torch.testing.assert_close(memories.vis.prototypes, memory_rgb.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(memories.ir.prototypes, memory_ir.features, rtol=0, atol=1e-6)
    check_gradients(grad, f_rgb, f_ir, is_ir, direction="ir" if epoch % 2 == 1 else "vis", memory_update=memory_update)
    # untouched: visible 3 in both parities, infrared 1 and (odd epochs: ir features against the visible memory) 2
    torch.testing.assert_close(memories.vis.prototypes[3], initial_vis[3], rtol=0, atol=0)
    torch.testing.assert_close(memories.ir.prototypes[1], initial_ir[1], rtol=0, atol=0)
    moved_ir2 = not torch.equal(memories.ir.prototypes[2], initial_ir[2])
    assert moved_ir2 == (epoch % 2 == 0)  # infrared 2 moves only through the visible rows' cross term


@pytest.mark.parametrize("memory_update", UPDATES)
@pytest.mark.parametrize("memory", ["hard", "centroid"])
def test_cross_modal_objective_without_alternation_equals_the_trainers_else_branch(memory, memory_update):
    memory_class, options = MEMORIES[memory]
    vis, ir, features, labels, is_ir = scene(seed=5)
    memories = ModalityMemories(memory_class.from_centroids(vis), memory_class.from_centroids(ir), NUM_VIS)
    objective = CrossModalObjective(memories, matching(), weight=0.25, stage_epoch=0, alternate=False)
    terms, grad = our_step(objective, StepBatch(features.clone().requires_grad_(), labels, is_ir), memory_update)
    memory_rgb, memory_ir = RefClusterMemory(vis, **options), RefClusterMemory(ir, **options)
    f_rgb, labels_rgb, f_ir, labels_ir = reference_inputs(features, labels, is_ir)
    ref = pgm_iteration(memory_ir, memory_rgb, f_rgb, labels_rgb, f_ir, labels_ir, 0, *dicts(matching()),
                        alternate=False)
    assert terms["cross"].item() == pytest.approx(0.25 * ref["cross"].item(), rel=1e-6)
    torch.testing.assert_close(memories.vis.prototypes, memory_rgb.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(memories.ir.prototypes, memory_ir.features, rtol=0, atol=1e-6)
    if memory_update == "in_backward":  # both memories serve two terms here: every row read a moved memory
        check_gradients(grad, f_rgb, f_ir, is_ir, direction=None, memory_update=memory_update)
    else:
        assert not torch.allclose(grad[is_ir], f_ir.grad, atol=1e-6)
        assert not torch.allclose(grad[~is_ir], f_rgb.grad, atol=1e-6)


@pytest.mark.parametrize("memory", ["hard", "centroid"])
def test_without_a_matching_there_is_no_cross_term(memory):
    """More infrared than visible clusters under PGM's one-sided rule: r2i is empty, cross_loss = 0."""
    memory_class, options = MEMORIES[memory]
    vis, ir, features, labels, is_ir = scene(seed=6)
    memories = ModalityMemories(memory_class.from_centroids(vis), memory_class.from_centroids(ir), NUM_VIS)
    objective = CrossModalObjective(memories, matching(False), weight=0.25, stage_epoch=1)
    terms, grad = our_step(objective, StepBatch(features.clone().requires_grad_(), labels, is_ir))
    memory_rgb, memory_ir = RefClusterMemory(vis, **options), RefClusterMemory(ir, **options)
    f_rgb, labels_rgb, f_ir, labels_ir = reference_inputs(features, labels, is_ir)
    ref = pgm_iteration(memory_ir, memory_rgb, f_rgb, labels_rgb, f_ir, labels_ir, 1, *dicts(matching(False)))
    assert set(terms) == {"vis", "ir"} and ref["cross"].item() == 0.0
    assert sum(terms.values()).item() == pytest.approx((ref["ir"] + ref["rgb"]).item(), rel=1e-6)
    torch.testing.assert_close(memories.vis.prototypes, memory_rgb.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(memories.ir.prototypes, memory_ir.features, rtol=0, atol=1e-6)
    check_gradients(grad, f_rgb, f_ir, is_ir, direction=None)


def test_intra_modality_objective_equals_the_trainer_without_cross_term():
    vis, ir, features, labels, is_ir = scene(seed=7)
    memories = ModalityMemories(ClusterMemory.from_centroids(vis), ClusterMemory.from_centroids(ir), NUM_VIS)
    terms, grad = our_step(IntraModalityObjective(memories), StepBatch(features.clone().requires_grad_(), labels,
                                                                       is_ir))
    memory_rgb, memory_ir = RefClusterMemory(vis), RefClusterMemory(ir)
    f_rgb, labels_rgb, f_ir, labels_ir = reference_inputs(features, labels, is_ir)
    ref = pgm_iteration(memory_ir, memory_rgb, f_rgb, labels_rgb, f_ir, labels_ir, 0, {}, {})
    assert terms["vis"].item() == pytest.approx(ref["rgb"].item(), rel=1e-6)
    assert terms["ir"].item() == pytest.approx(ref["ir"].item(), rel=1e-6)
    torch.testing.assert_close(memories.vis.prototypes, memory_rgb.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(memories.ir.prototypes, memory_ir.features, rtol=0, atol=1e-6)
    check_gradients(grad, f_rgb, f_ir, is_ir, direction=None)


# --------------------------------------------------------------------------- PCLHD pass 1


def hybrid_memories(vis, ir):
    return ModalityMemories(HybridMemory.from_centroids(vis[:NUM_VIS], momentum=0.1),
                            HybridMemory.from_centroids(ir[:NUM_IR], momentum=0.1), NUM_VIS)


def set_prototypes(memories: ModalityMemories, vis, ir):
    """Distinct centroid and hard halves (as after some training)."""
    memories.vis.prototypes, memories.ir.prototypes = vis.clone(), ir.clone()
    return memories


@pytest.mark.parametrize("memory_update", UPDATES)
@pytest.mark.parametrize("epoch", [0, 1])
@pytest.mark.parametrize("mode", ["CMhybrid", "CMhard"])
def test_hybrid_cross_modal_step_equals_pclhd_pass_one(epoch, mode, memory_update):
    vis, ir, features, labels, is_ir = scene(seed=10 + epoch, rows_per_cluster=2)
    memories = set_prototypes(hybrid_memories(vis, ir), vis, ir)
    objective = CrossModalObjective(memories, matching(), weight=0.25, stage_epoch=epoch)
    terms, grad = our_step(objective, StepBatch(features.clone().requires_grad_(), labels, is_ir), memory_update)
    memory_rgb, memory_ir = RefPCLHDMemory(vis, mode=mode), RefPCLHDMemory(ir, mode=mode)
    f_rgb, labels_rgb, f_ir, labels_ir = reference_inputs(features, labels, is_ir)
    ref = pclmp_iteration(memory_ir, memory_rgb, f_rgb, labels_rgb, f_ir, labels_ir, epoch, *dicts(matching()))
    assert terms["vis"].item() == pytest.approx(ref["rgb"].item(), rel=1e-6)
    assert terms["ir"].item() == pytest.approx(ref["ir"].item(), rel=1e-6)
    assert terms["cross"].item() == pytest.approx(0.25 * ref["cross"].item(), rel=1e-6)
    torch.testing.assert_close(memories.vis.prototypes, memory_rgb.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(memories.ir.prototypes, memory_ir.features, rtol=0, atol=1e-6)
    check_gradients(grad, f_rgb, f_ir, is_ir, direction="ir" if epoch % 2 == 1 else "vis", memory_update=memory_update)
    torch.testing.assert_close(memories.vis.prototypes[[3, 3 + NUM_VIS]], vis[[3, 3 + NUM_VIS]], rtol=0, atol=0)


def instance_memories(seed: int, num_instances: int = 16):
    generator = torch.Generator().manual_seed(seed)
    made = []
    for num in (NUM_VIS, NUM_IR):
        memory = InstanceMemory(DIM, num, num_instances=num_instances, generator=torch.Generator().manual_seed(seed))
        memory.prototypes = reference_memories.random_unit(num_instances * num, DIM, generator)
        made.append(memory)
    return ModalityMemories(made[0], made[1], NUM_VIS)


@pytest.mark.parametrize("memory_update", UPDATES)
@pytest.mark.parametrize("epoch", [0, 1])
def test_dynamic_prototype_objective_released_equals_pclhd_pass_one_with_its_ema_part(epoch, memory_update):
    """released=True: the dynamic term is the instance memories' loss of the teacher's features, no gradient, and
    the instance memories never move (their update lives in a backward the reference never runs)."""
    vis, ir, features, labels, is_ir = scene(seed=20 + epoch, rows_per_cluster=2)
    teacher = reference_memories.unit(features + 0.2 * torch.randn(features.shape, generator=torch.Generator()
                                                                   .manual_seed(epoch)))
    memories = set_prototypes(hybrid_memories(vis, ir), vis, ir)
    instances = instance_memories(seed=epoch)
    before = (instances.vis.prototypes.clone(), instances.ir.prototypes.clone())
    objective = DynamicPrototypeObjective(memories, instances, released=True, matching=matching(), weight=0.25,
                                          stage_epoch=epoch)
    batch = StepBatch(features.clone().requires_grad_(), labels, is_ir, teacher_features=teacher)
    terms, grad = our_step(objective, batch, memory_update)

    memory_rgb = RefPCLHDMemory(vis, mode="CMhard", features_ema=before[0])
    memory_ir = RefPCLHDMemory(ir, mode="CMhard", features_ema=before[1])
    f_rgb, labels_rgb, f_ir, labels_ir = reference_inputs(features, labels, is_ir)
    ref = pclmp_iteration(memory_ir, memory_rgb, f_rgb, labels_rgb, f_ir, labels_ir, epoch, *dicts(matching()),
                          f_out_rgb_ema=teacher[~is_ir], f_out_ir_ema=teacher[is_ir])
    assert set(terms) == {"vis", "ir", "cross", "dynamic"}
    assert terms["dynamic"].item() == pytest.approx(ref["ema"].item(), rel=1e-6)
    assert not terms["dynamic"].requires_grad
    assert terms["cross"].item() == pytest.approx(0.25 * ref["cross"].item(), rel=1e-6)
    torch.testing.assert_close(memories.vis.prototypes, memory_rgb.features, rtol=0, atol=1e-6)
    torch.testing.assert_close(memories.ir.prototypes, memory_ir.features, rtol=0, atol=1e-6)
    for ours, ref_memory, initial in ((instances.vis, memory_rgb, before[0]), (instances.ir, memory_ir, before[1])):
        torch.testing.assert_close(ours.prototypes, initial, rtol=0, atol=0)
        torch.testing.assert_close(ref_memory.features_ema, initial, rtol=0, atol=0)
    check_gradients(grad, f_rgb, f_ir, is_ir, direction="ir" if epoch % 2 == 1 else "vis", memory_update=memory_update)


def test_dynamic_prototype_objective_paper_trains_the_student_and_refills_from_the_teacher():
    """Our stated rule for dynamic_loss="paper" (no released counterpart): the term has a gradient to the student's
    features; each instance memory's present clusters then hold the teacher's (normalised) features of them."""
    vis, ir, features, labels, is_ir = scene(seed=30, rows_per_cluster=2)
    teacher = reference_memories.unit(torch.randn(features.shape, generator=torch.Generator().manual_seed(1)))
    instances = instance_memories(seed=2, num_instances=4)
    before = instances.vis.prototypes.clone()
    objective = DynamicPrototypeObjective(set_prototypes(hybrid_memories(vis, ir), vis, ir), instances,
                                          released=False, matching=matching(), weight=0.25, stage_epoch=0)
    batch = StepBatch(features.clone().requires_grad_(), labels, is_ir, teacher_features=teacher)
    terms = objective.loss(batch)
    assert terms["dynamic"].requires_grad
    expected = sum(instances[m].loss(features[rows], instances.own_labels(labels[rows], m))
                   for m, rows in (("vis", ~is_ir), ("ir", is_ir)))
    assert terms["dynamic"].item() == pytest.approx(expected.item(), rel=1e-6)
    objective.update(StepBatch(features, labels, is_ir, teacher_features=teacher))
    for cluster in range(NUM_VIS):
        stored = instances.vis.instances[:, cluster]
        members = teacher[~is_ir][labels[~is_ir] == cluster]
        if len(members) == 0:
            torch.testing.assert_close(stored, before.view(4, NUM_VIS, DIM)[:, cluster], rtol=0, atol=0)
        else:
            assert torch.all((stored @ members.t()).max(dim=1).values > 1 - 1e-6)


# --------------------------------------------------------------------------- PCLHD pass 2


def mixed_scene(seed: int):
    """"all" clusters of both modalities: 0-3 hold both, 4 visible images only, 5 infrared only; outliers."""
    generator = torch.Generator().manual_seed(seed)
    labels = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, -1, 0, 1,     # visible
                       0, 1, 2, 3, 5, 0, 1, 2, 3, 5, -1, 2, 0])    # infrared
    is_ir = np.arange(len(labels)) >= 13
    features = reference_memories.random_unit(len(labels), DIM, generator)
    return features, labels, is_ir


def test_balanced_centroids_and_bimodal_rows_equal_pclhd_set_up():
    features, labels, is_ir = mixed_scene(0)
    files = [("d/ir_modify/x.jpg" if ir else "d/rgb_modify/x.jpg", 0, 0) for ir in is_ir]
    expected = generate_modal_invariant_cluster_features(labels.tolist(), 6, features, files)
    torch.testing.assert_close(balanced_centroids(features, labels, is_ir), expected, rtol=0, atol=1e-6)
    drawn = bimodal_rows(PseudoLabels(labels, shared=True), is_ir)
    all_ir, all_rgb = bimodal_flags(labels.tolist(), files)
    np.testing.assert_array_equal(np.flatnonzero(drawn >= 0), np.sort(all_ir + all_rgb))
    np.testing.assert_array_equal(drawn[drawn >= 0], labels[drawn >= 0])
    assert not np.isin(drawn, [4, 5]).any()


@pytest.mark.parametrize("memory_update", UPDATES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_cluster_objective_equals_pclhd_pass_two(seed, memory_update):
    features, labels, is_ir = mixed_scene(seed)
    centroids = balanced_centroids(features, labels, is_ir)
    memory = HybridMemory.from_centroids(centroids, momentum=0.1)
    generator = torch.Generator().manual_seed(100 + seed)
    drawn = bimodal_rows(PseudoLabels(labels, shared=True), is_ir)
    rows = torch.as_tensor(np.flatnonzero(drawn >= 0))
    rows = rows[torch.randperm(len(rows), generator=generator)]  # a batch of drawn images, shuffled
    batch_labels = torch.as_tensor(drawn)[rows]
    batch_is_ir = torch.as_tensor(is_ir)[rows]
    batch_features = reference_memories.unit(features[rows] + 0.5 * torch.randn(len(rows), DIM, generator=generator))
    terms, grad = our_step(MixedClusterObjective(memory), StepBatch(batch_features.clone().requires_grad_(),
                                                                   batch_labels, batch_is_ir), memory_update)
    memory_all = RefPCLHDMemory(torch.nn.functional.normalize(centroids.repeat(2, 1), dim=1), mode="CMhybrid")
    f_rgb = batch_features[~batch_is_ir].clone().requires_grad_()
    f_ir = batch_features[batch_is_ir].clone().requires_grad_()
    loss2 = pclmp_all_iteration(memory_all, f_rgb, batch_labels[~batch_is_ir], f_ir, batch_labels[batch_is_ir])
    assert set(terms) == {"mixed"}
    assert terms["mixed"].item() == pytest.approx(loss2.item(), rel=1e-6)
    torch.testing.assert_close(memory.prototypes, memory_all.features, rtol=0, atol=1e-6)
    # the visible rows' backward runs first (created last): the infrared rows' gradient reads the moved memory
    check_gradients(grad, f_rgb, f_ir, batch_is_ir, direction="vis", memory_update=memory_update)
    # the order matters here: the infrared rows first ends elsewhere
    other = HybridMemory.from_centroids(centroids, momentum=0.1)
    other.update(batch_features[batch_is_ir], batch_labels[batch_is_ir])
    other.update(batch_features[~batch_is_ir], batch_labels[~batch_is_ir])
    assert not torch.allclose(other.prototypes, memory_all.features, atol=1e-4)


def test_trying_the_backward_s_updates_touches_neither_the_memories_nor_their_draws():
    """Under in_backward the loss tries each update on a copy: the memories (and an instance memory's generator)
    are as before the loss; only `update` moves them."""
    vis, ir, features, labels, is_ir = scene(seed=40)
    memories = ModalityMemories(HardClusterMemory.from_centroids(vis), HardClusterMemory.from_centroids(ir), NUM_VIS)
    before = (memories.vis.prototypes.clone(), memories.ir.prototypes.clone())
    objective = CrossModalObjective(memories, matching(), weight=0.25, stage_epoch=0, alternate=False)
    batch = StepBatch(features.clone().requires_grad_(), labels, is_ir)
    batch.update_batch = StepBatch(features, labels, is_ir)
    objective.loss(batch)
    assert torch.equal(memories.vis.prototypes, before[0]) and torch.equal(memories.ir.prototypes, before[1])
    instances = instance_memories(seed=3, num_instances=2).vis
    state, prototypes = instances.generator.get_state(), instances.prototypes.clone()
    copy = instances.clone()
    copy.update(features[~is_ir], labels[~is_ir])
    assert torch.equal(instances.generator.get_state(), state) and torch.equal(instances.prototypes, prototypes)
    instances.update(features[~is_ir], labels[~is_ir])
    torch.testing.assert_close(instances.prototypes, copy.prototypes, rtol=0, atol=0)  # the same draws
