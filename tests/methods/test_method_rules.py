"""The methods' own rules, at the level of one epoch's plan and one run: PCLHD's dynamic-prototype term under the
paper's and the released rule, its pass over mixed clusters, its EMA teacher and what it delivers; ADCA's
aggregation applied after the memories are built; PGM's alternating direction; the shared helpers; and that a
method written outside the package runs once registered (adding a method is one file)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid.checkpoint import load_checkpoint
from reid.memories import ClusterMemory
from reid.methods import METHODS, EpochContext, EpochPlan, Method, StepBatch, TrainingPass, register_method
from reid.methods.adca import ADCA
from reid.methods.ema import make_teacher, update_teacher
from reid.methods.parts import IntraModalityObjective, build_modality_memories
from reid.methods.pclhd import PCLHD, CrossLabels, PCLHDOptions, balanced_centroids, bimodal_rows
from reid.methods.pgm import PGM
from reid.pseudo_labels import PseudoLabels, matched_labels, true_id_labels
from reid.train import train_reid
from reid.train_config import ClusterConfig

from test_reid_train import build, data, history, tiny_reid_config  # noqa: F401 - `data` is a fixture

# 12 images: 3 identities, each 2 visible + 2 infrared
PIDS = np.repeat([0, 1, 2], 4)
IS_IR = np.tile([False, False, True, True], 3)


def context(features: torch.Tensor | None = None, stage_epoch: int = 0, teacher: torch.Tensor | None = None
            ) -> EpochContext:
    generator = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(len(PIDS), 8, generator=generator), dim=1) if features is None else features
    return EpochContext(features=features, is_ir=IS_IR, true_ids=PIDS, cluster=ClusterConfig(), temperature=0.05,
                        momentum=0.1, stage_epoch=stage_epoch, seed=0, device=torch.device("cpu"),
                        teacher_features=teacher if teacher is not None else features.flip(0))


def per_modality_true_ids() -> PseudoLabels:
    """The true ids as per-modality labels side by side: visible 0..2, infrared 3..5."""
    return PseudoLabels(np.where(IS_IR, PIDS + 3, PIDS), shared=False, num_vis_clusters=3)


def step_batch(ctx: EpochContext, pseudo: PseudoLabels, *, grad: bool = True) -> StepBatch:
    features = ctx.features.clone().requires_grad_(grad)
    return StepBatch(features, torch.as_tensor(pseudo.labels), torch.as_tensor(IS_IR),
                     teacher_features=ctx.teacher_features)


@pytest.mark.parametrize("rule", ["paper", "released"])
def test_pclhd_s_dynamic_term_trains_the_student_only_under_the_paper_s_rule(rule):
    """paper: the student's features against the instance memory (a gradient), the teacher's batch refills it;
    released: the teacher's features under no_grad (no gradient to the student), the memory never moves."""
    ctx, pseudo = context(), per_modality_true_ids()
    method = PCLHD(PCLHDOptions(num_instances=2, dynamic_loss=rule))
    plan = method.plan("cross", ctx, CrossLabels(pseudo, true_id_labels(PIDS)))
    objective = plan.passes[0].objective
    batch = step_batch(ctx, pseudo)
    before = {m: objective.instances[m].prototypes.clone() for m in ("vis", "ir")}
    dynamic = objective.loss(batch)["dynamic"]
    assert dynamic.requires_grad == (rule == "paper")
    if rule == "paper":
        (gradient,) = torch.autograd.grad(dynamic, batch.features)
        assert gradient.abs().sum() > 0
    objective.update(StepBatch(batch.features.detach(), batch.labels, batch.is_ir,
                               teacher_features=batch.teacher_features))
    moved = [not torch.equal(before[m], objective.instances[m].prototypes) for m in ("vis", "ir")]
    assert moved == [rule == "paper"] * 2
    if rule == "paper":  # refilled with the teacher's (normalised) features of each cluster's batch members
        instances = objective.instances["vis"].instances  # [K, C, D]
        teacher = F.normalize(batch.teacher_features[~batch.is_ir], dim=1)
        for cluster in range(3):
            members = teacher[batch.labels[~batch.is_ir] == cluster]
            assert all(any(torch.allclose(row, m) for m in members) for row in instances[:, cluster])


@pytest.mark.parametrize("rule", ["paper", "released"])
def test_pclhd_s_instance_memory_starts_from_the_teacher_s_features_under_both_rules(rule):
    """The released stage 2 sets `args.memorybank = 'CMhard'` (train_sysu.py:739, train_regdb.py:591) whatever -mb
    the run script passes (`CMhybrid`), and under CMhard `features_ema` is filled from the teacher's features
    (train_sysu.py:891-902, 934-935; train_regdb.py:767-768): every instance of cluster c is the normalised teacher
    feature of a member of c (not zeros, not the student's)."""
    ctx, pseudo = context(), per_modality_true_ids()  # teacher features: the student's in reverse order
    objective = PCLHD(PCLHDOptions(num_instances=4, dynamic_loss=rule)).plan(
        "cross", ctx, CrossLabels(pseudo, true_id_labels(PIDS))).passes[0].objective
    for modality in ("vis", "ir"):
        rows = ctx.rows_of(modality)
        labels = pseudo.of_modality(ctx.is_ir, modality)
        instances = objective.instances[modality].instances  # [K, C, D]
        for cluster in range(3):
            teacher = F.normalize(ctx.teacher_features[rows[labels == cluster]], dim=1)
            student = F.normalize(ctx.features[rows[labels == cluster]], dim=1)
            assert all((teacher - row).abs().max(dim=1).values.min() < 1e-6 for row in instances[:, cluster])
            assert all((student - row).abs().max(dim=1).values.min() > 1e-3 for row in instances[:, cluster])


def test_pclhd_s_second_pass_draws_only_clusters_holding_both_modalities():
    labels = PseudoLabels(np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, -1, 3, 3]), shared=True)
    is_ir = np.array([0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1], dtype=bool)
    assert bimodal_rows(labels, is_ir).tolist() == [0, 0, 0, -1, -1, 2, 2, 2, -1, -1, -1, -1]
    features = torch.tensor([[1.0, 0], [3, 0], [0, 2], [1, 1], [1, 1], [2, 0], [0, 4], [0, 2], [5, 5], [9, 9],
                             [1, 1], [1, 1]])
    centroids = balanced_centroids(features, labels.labels, is_ir)
    # cluster 0: mean(vis mean [2, 0], ir mean [0, 2]); 1: visible only; 2: mean([2, 0], [0, 3]); 3: infrared only
    torch.testing.assert_close(centroids, torch.tensor([[1.0, 1], [1, 1], [1, 1.5], [7 / 3, 7 / 3]]))


def test_pclhd_plans_its_mixed_pass_only_when_mixed_clusters_exist():
    ctx, pseudo = context(), per_modality_true_ids()
    method = PCLHD(PCLHDOptions(num_instances=2))
    both = method.plan("cross", ctx, CrossLabels(pseudo, true_id_labels(PIDS)))
    assert len(both.passes) == 2 and both.notes["bimodal_clusters"] == 3
    one_modality = PseudoLabels(np.where(IS_IR, -1, PIDS), shared=True)  # no cluster with an infrared image
    alone = method.plan("cross", ctx, CrossLabels(pseudo, one_modality))
    assert len(alone.passes) == 1 and alone.notes["bimodal_clusters"] == 0


def test_the_ema_teacher_follows_the_student_by_its_momentum():
    student = torch.nn.Linear(3, 2)
    teacher = make_teacher(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    start = [p.detach().clone() for p in teacher.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    update_teacher(teacher, student, momentum=0.75)
    for mean, old, current in zip(teacher.parameters(), start, student.parameters()):
        torch.testing.assert_close(mean, 0.75 * old + 0.25 * current)


def test_pclhd_trains_two_steps_an_iteration_and_delivers_its_teacher(data, tmp_path, monkeypatch):
    """With mixed clusters holding both modalities (here: the true ids as PCLHD's "all" clusters) each cross-stage
    iteration steps the optimiser twice (term "mixed" from the second pass); the checkpoint's model is the EMA
    teacher, and the last epoch's evaluation is that of the teacher, not of the student."""
    import reid.methods.pclhd as pclhd
    from reid.data import load_dataset
    from reid.evaluation import evaluate_protocol
    from reid.features import extract_features
    from reid.models import load_model_checkpoint

    root, translated = data
    dataset = load_dataset("synthetic", root)
    pids = np.array([record.pid for record in dataset.train])
    monkeypatch.setattr(pclhd, "modality_invariant_labels", lambda *args, **kwargs: true_id_labels(pids))
    out = tmp_path / "run"
    config = tiny_reid_config(root, None, out, method="pclhd", options={"ema_momentum": 0.5})
    config["eval"] |= {"trials": 1, "settings": ["all-single"]}
    checkpoint = train_reid(build(config, tmp_path / "c.yaml"))
    lines = history(out)
    assert "loss_mixed" not in lines[0] and np.isfinite(lines[1]["loss_mixed"])
    state = load_checkpoint(checkpoint)["state"]
    assert int(next(iter(state["optimizer"]["state"].values()))["step"]) == 2 * 3  # 3 iterations, 2 passes each
    assert any(not torch.equal(state["model"][k], state["student"][k]) for k in state["model"])
    assert all(torch.equal(state["method"]["teacher"][k], state["model"][k]) for k in state["model"])
    model, _ = load_model_checkpoint(checkpoint)

    def features_of(records):
        return extract_features(model, records, "cpu", height=32, width=16, num_workers=0, batch_size=16)

    delivered = evaluate_protocol(features_of, dataset, settings=["all-single"], trials=1).settings["all-single"]
    assert delivered.mean() == lines[1]["eval"]["all-single"]


def test_adca_aggregates_the_memories_after_building_them_in_its_cross_stage_only():
    ctx = context()
    pseudo = per_modality_true_ids()
    intra, cross = (ADCA().plan(phase, ctx, pseudo) for phase in ("intra", "cross"))
    built = build_modality_memories(ClusterMemory, ctx, pseudo)
    intra_memories, cross_memories = (plan.passes[0].objective.memories for plan in (intra, cross))
    torch.testing.assert_close(intra_memories.vis.prototypes, built.vis.prototypes)
    pairs = cross.notes["cma_pairs"]
    assert pairs >= 1 and cross.report.shared  # the report: the clusters joined by the aggregated pairs
    changed = (cross_memories.vis.prototypes - built.vis.prototypes).abs().sum(dim=1) > 0
    assert int(changed.sum()) == pairs
    torch.testing.assert_close(cross_memories.ir.prototypes, built.ir.prototypes)


@pytest.mark.parametrize("stage_epoch, direction", [(0, ("vis", "ir")), (1, ("ir", "vis")), (2, ("vis", "ir"))])
def test_pgm_s_cross_term_alternates_by_epoch_of_its_stage(stage_epoch, direction):
    plan = PGM().plan("cross", context(stage_epoch=stage_epoch), per_modality_true_ids())
    assert plan.passes[0].objective.directions == [direction]
    assert PGM().plan("intra", context(), per_modality_true_ids()).passes[0].objective.__class__ is \
        IntraModalityObjective


def side_by_side(vis_labels, ir_labels) -> PseudoLabels:
    """Per-modality labels of the 6 visible and 6 infrared images of `context()`, infrared ids after the visible."""
    labels = np.empty(len(IS_IR), dtype=np.int64)
    labels[~IS_IR], labels[IS_IR] = vis_labels, np.asarray(ir_labels) + max(vis_labels) + 1
    return PseudoLabels(labels, shared=False, num_vis_clusters=max(vis_labels) + 1)


@pytest.mark.parametrize("stage_epoch", [0, 1])
def test_pgm_with_over_twice_as_many_visible_clusters_trains_every_one_across_modalities(stage_epoch):
    """6 visible clusters, 2 infrared: PGM's one extra round leaves 2 visible clusters without a partner and its
    trainer raises a KeyError on them (its issues #2, #4-#6; tests/cluster/test_matching.py
    ::test_where_the_reference_runs_and_where_it_would_fail); ours matches on until every visible cluster has one,
    so every visible row has a cross-modal label and the term trains."""
    pseudo = side_by_side([0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 0, 1])
    ctx = context(stage_epoch=stage_epoch)
    objective = PGM().plan("cross", ctx, pseudo).passes[0].objective
    assert objective.matching.vis_to_ir.tolist().count(-1) == 0 and sorted(set(objective.matching.vis_to_ir)) == [0, 1]
    vis_labels = torch.as_tensor(pseudo.labels)[~torch.as_tensor(IS_IR)]
    assert bool((objective.cross_labels(vis_labels, "vis") >= 0).all())
    terms = objective.loss(step_batch(ctx, pseudo))
    assert set(terms) == {"vis", "ir", "cross"} and torch.isfinite(terms["cross"])


def test_pgm_with_fewer_visible_than_infrared_clusters_trains_without_the_cross_term_unless_symmetric():
    """2 visible clusters, 6 infrared: the one-sided rule (PGM train_sysu.py:822 `if num_cluster_rgb >=
    num_cluster_ir`) matches nothing, so that epoch trains the intra-modality terms only (the reference's
    `if r2i:` is false); the symmetric rule (train_regdb.py) swaps the roles and every infrared cluster is matched."""
    pseudo = side_by_side([0, 0, 0, 1, 1, 1], [0, 1, 2, 3, 4, 5])
    ctx = context(stage_epoch=1)
    plan = PGM().plan("cross", ctx, pseudo)
    assert plan.notes == {"matched": False} and plan.passes[0].objective.directions == []
    assert set(plan.passes[0].objective.loss(step_batch(ctx, pseudo))) == {"vis", "ir"}
    symmetric = PGM(PGM.Options(matching="symmetric")).plan("cross", ctx, pseudo).passes[0].objective
    assert symmetric.directions == [("ir", "vis")] and bool((symmetric.matching.ir_to_vis >= 0).all())
    assert set(symmetric.loss(step_batch(ctx, pseudo))) == {"vis", "ir", "cross"}


def test_pgm_and_pclhd_weigh_the_cross_term_a_quarter_by_default():
    """`loss = loss_ir + new_loss_rgb + 0.25 * new_cross_loss` (PGM trainers.py:99; PCLHD trainers.py:180)."""
    ctx, pseudo = context(stage_epoch=1), per_modality_true_ids()
    plans = [PGM().plan("cross", ctx, pseudo),
             PCLHD(PCLHDOptions(num_instances=2)).plan("cross", ctx, CrossLabels(pseudo, true_id_labels(PIDS)))]
    for plan in plans:
        objective = plan.passes[0].objective
        assert objective.weight == 0.25 and objective.directions == [("ir", "vis")]
        batch = step_batch(ctx, pseudo)
        infrared, labels = batch.of_modality("ir")
        unweighted = objective.memories["vis"].loss(infrared, objective.cross_labels(labels, "ir"))
        assert objective.loss(batch)["cross"].item() == pytest.approx(0.25 * unweighted.item(), rel=1e-6)


def test_matched_labels_join_the_clusters_linked_by_the_pairs():
    pseudo = PseudoLabels(np.array([0, 1, 2, -1, 3, 4, 4]), shared=False, num_vis_clusters=3)  # vis 0..2, ir 3..4
    joined = matched_labels(pseudo, [(0, 0), (1, 0), (2, 1)])  # vis 0 and 1 with ir 0; vis 2 with ir 1
    assert joined.shared and joined.labels.tolist() == [0, 0, 1, -1, 0, 1, 1]


@dataclasses.dataclass
class HalfOptions:
    weight: float = 0.5


class HalfContrast(Method):
    """A method written outside the package: cluster-contrast per modality at half weight."""

    name = "half_contrast"
    Options = HalfOptions
    summary = "a test method"

    def pseudo_labels(self, phase: str, context: EpochContext) -> PseudoLabels:
        from reid.pseudo_labels import per_modality_labels

        return per_modality_labels(context.features, context.is_ir, context.cluster)

    def plan(self, phase: str, context: EpochContext, labels: PseudoLabels) -> EpochPlan:
        objective = IntraModalityObjective(build_modality_memories(ClusterMemory, context, labels))
        loss = objective.loss
        objective.loss = lambda batch: {name: self.options.weight * term for name, term in loss(batch).items()}
        return EpochPlan([TrainingPass(labels.labels, objective)], report=labels)


def test_a_method_registered_from_outside_trains_from_its_config(data, tmp_path):
    root, _ = data
    register_method(HalfContrast)
    try:
        out = tmp_path / "run"
        config = tiny_reid_config(root, None, out, method="half_contrast", options={"weight": 0.25})
        train_reid(build(config, tmp_path / "c.yaml"))
        saved = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        assert np.isfinite(saved["loss_vis"]) and saved["stage"] == "cross"
        with pytest.raises(TypeError):
            register_method(object)
    finally:
        METHODS.pop("half_contrast")


def test_a_modality_without_any_cluster_is_an_error_naming_it():
    labels = PseudoLabels(np.where(IS_IR, -1, PIDS), shared=False, num_vis_clusters=3)
    with pytest.raises(ValueError, match="no ir cluster this epoch: all 6 ir images are outliers; loosen"):
        build_modality_memories(ClusterMemory, context(), labels)


def test_train_memory_update_in_backward_reaches_the_objectives_and_changes_only_shared_memories_gradients(
        data, tmp_path, monkeypatch):
    """Under train.memory_update "in_backward" the loop hands the objectives every rank's detached batch, so that
    PGM's cross stage (one memory per modality serving two terms) takes the references' gradients; under
    "after_step" nothing is tried. The first stage (a memory per term) trains equally either way, the second not."""
    import reid.methods.parts as parts
    root, _ = data
    tried = []
    original = parts.prototypes_in_backward
    monkeypatch.setattr(parts, "prototypes_in_backward", lambda *args: tried.append(1) or original(*args))
    weights = {}
    for rule in ("after_step", "in_backward"):
        for cross_epochs in (0, 1):  # the first stage only, then both
            out = tmp_path / f"{rule}-{cross_epochs}"
            config = tiny_reid_config(root, None, out, method="pgm", cross={"epochs": cross_epochs}, memory_update=rule)
            checkpoint = train_reid(build(config, tmp_path / "c.yaml"))
            weights[rule, cross_epochs] = load_checkpoint(checkpoint)["state"]["model"]
        assert (len(tried) > 0) == (rule == "in_backward")
    for cross_epochs, equal in ((0, True), (1, False)):
        after_step, in_backward = weights["after_step", cross_epochs], weights["in_backward", cross_epochs]
        assert all(torch.equal(after_step[k], in_backward[k]) for k in after_step) == equal


def test_train_memory_update_is_one_of_the_two_rules():
    from reid.config import ConfigError
    from reid.train_config import ReIDTrainConfig
    with pytest.raises(ConfigError, match="train.memory_update"):
        ReIDTrainConfig(memory_update="during_backward")
