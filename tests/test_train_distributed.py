"""`vireid train` with two CPU processes (gloo): under torchrun, features gathered for clustering on rank 0,
labels broadcast, rank 0 writes; and the weights, memories and EMA teacher after two epochs of PCLHD (the method
with the most moving parts: two passes an iteration, four kinds of memory, a teacher) equal one process's on the
global batches (gradients averaged by DDP, memories updated with every rank's batch)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import yaml

import reid.train as reid_train
from distributed_helpers import (assert_states_close, cloned_state, largest_difference, perturb_parameters,
                                 run_in_processes)
from reid.checkpoint import load_checkpoint
from reid.config import config_from_dict
from reid.data import make_synthetic_sysu
from reid.methods import EpochContext
from reid.methods.pclhd import CrossLabels
from reid.pseudo_labels import PseudoLabels, true_id_labels
from reid.runtime import DistributedContext
from reid.train import _Run
from reid.train_config import ReIDConfig

REPO = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes(tmp_path):
    root = tmp_path / "synthetic"
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    config = {"data": {"name": "synthetic", "root": str(root)},
              "model": {"arch": "tiny", "height": 32, "width": 16},
              "augment": {"pad": 2},
              "cluster": {"k1": 6, "k2": 2, "min_samples": 2},
              "train": {"iterations": 2, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                        "stages": {"intra": {"epochs": 1}, "cross": {"epochs": 1}}},
              "method": {"name": "pgm"},
              "eval": {"every": 2, "trials": 1, "settings": ["all-single"]},
              "runtime": {"device": "cpu", "workers": 0, "log_level": "WARNING"},
              "output_dir": str(tmp_path / "run")}
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29544",
               "-m", "reid.cli", "train", str(tmp_path / "ddp.yaml")]
    result = subprocess.run(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", kind="reid")["step"] == 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]  # written once, by rank 0
    from reid.data import load_dataset
    assert lines[1]["cluster"]["num_samples"] == len(load_dataset("synthetic", root).train)  # every image, all ranks
    assert "all-single" in lines[1]["eval"]


# --------------------------------------------------------------------------- two processes == one on the global batch
# `_Run.train` runs for real in two gloo processes (DDP wrap, optimiser, the method's memories and passes,
# `_train_epoch`, `_batch`, `_step`, the teacher's forward and EMA update, the gather, rank-0 writes) with three
# pieces replaced: `_plan` (fixed features and labels given to the method's real `plan`: clustering is rank 0's
# alone and covered above), `_loader` (fixed batches, different on each rank and pass) and `_evaluate` (skipped).
# The reference is one process running the same epochs on each step's global batch: the ranks' batches
# concatenated in rank order, the order `_gathered` gives the memories. BatchNorm normalises with per-rank batch
# statistics under DDP, which no single process reproduces, so every BatchNorm layer is kept in eval mode (running
# statistics, mean 0 and variance 1 here, so an affine layer): what is compared is the gradient averaging and the
# gather.

WORLD_SIZE = 2
STEPS = 2  # per epoch
PER_MODALITY = 3  # images of each modality per rank and step (the visible ones twice, with CAJ)
SCENARIOS = {
    "ddp": lambda: contextlib.nullcontext(),
    # each rank trains its own model on its own batches: no gradient averaging (nor the initial broadcast)
    "local_gradients": lambda: mock.patch.object(reid_train, "DistributedDataParallel", lambda module: module),
    # each rank's memories move with its own batch only
    "local_memory": lambda: mock.patch.object(_Run, "_gathered", lambda self, step: step),
}


def ddp_config(root: Path, out: Path) -> ReIDConfig:
    """PCLHD: epoch 1 its intra stage (a hybrid memory per modality); epoch 2 its cross stage (hybrid and instance
    memories, PGM's cross term, the pass over mixed clusters, the EMA teacher), from a fresh optimiser."""
    stages = {"intra": {"epochs": 1, "lr": 1e-3}, "cross": {"epochs": 1, "lr": 1e-3}}
    return config_from_dict(ReIDConfig, {
        "data": {"name": "synthetic", "root": str(root)},
        "method": {"name": "pclhd", "options": {"num_instances": 2, "ema_momentum": 0.5}},
        "model": {"arch": "tiny", "height": 32, "width": 16},
        "train": {"iterations": STEPS, "stages": stages},
        "runtime": {"device": "cpu", "workers": 0, "seed": 3},
        "output_dir": str(out)})


def fixed_plan(run: _Run, phase: str, stage_epoch: int, epoch: int):
    """The method's real plan from fixed features [N, 64] (random, L2-normalised, the same in every process) and the
    true ids as labels: visible ids 0.. then infrared ids after them, and (cross stage) the true ids as the mixed
    clusters, which then all hold both modalities."""
    records, is_ir = run.data.records, run.data.is_ir
    features = torch.nn.functional.normalize(torch.randn(len(records), 64, generator=torch.Generator().manual_seed(0)),
                                             dim=1)
    pids = np.array([record.pid for record in records])
    labels = np.empty(len(records), dtype=np.int64)
    vis_ids, labels[~is_ir] = np.unique(pids[~is_ir], return_inverse=True)
    labels[is_ir] = len(vis_ids) + np.unique(pids[is_ir], return_inverse=True)[1]
    per_modality = PseudoLabels(labels, shared=False, num_vis_clusters=len(vis_ids))
    context = EpochContext(features=features, is_ir=is_ir, true_ids=pids, cluster=run.config.cluster,
                           temperature=0.05, momentum=0.1, stage_epoch=stage_epoch, seed=epoch, device=run.device,
                           teacher_features=features.flip(0))
    return run.method.plan(phase, context, per_modality if phase == "intra" else
                           CrossLabels(per_modality, true_id_labels(pids)))


def rank_halves(labels: np.ndarray, is_ir: np.ndarray, epoch: int, rank: int, modality: str, stream: int) -> list[dict]:
    """One modality's half of each step's batch of a pass (`stream`) on `rank`, as its loader yields it:
    {"image" [B, 3, 32, 16], "label" [B]}, images random and labels those of random training images of the modality
    that the pass draws from (different per rank and pass)."""
    generator = torch.Generator().manual_seed(1000 * epoch + 100 * stream + 10 * rank)
    rows = np.flatnonzero((is_ir if modality == "ir" else ~is_ir) & (labels >= 0))
    halves = []
    for _ in range(STEPS):
        picked = rows[torch.randint(len(rows), (PER_MODALITY,), generator=generator).numpy()]
        halves.append({"image": torch.randn(PER_MODALITY, 3, 32, 16, generator=generator),
                       "label": torch.from_numpy(labels[picked])})
    return halves


def freeze_batch_norm(model: torch.nn.Module) -> None:
    """Keep every BatchNorm layer in eval mode (running statistics), also through model.train()."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.train = lambda mode=True, module=module: module


def replace_method(run: _Run, name: str, replacement) -> None:
    """Replace one of `run`'s methods; an error when `_Run` no longer has it (the test would test nothing)."""
    if not callable(getattr(_Run, name, None)):
        raise AttributeError(f"reid.train._Run has no method {name}: update this test")
    setattr(run, name, replacement)


def objective_memories(objective) -> dict[str, torch.Tensor]:
    """The prototypes of every memory an objective holds (ModalityMemories `memories` / `instances`, or `memory`)."""
    found = {}
    for name in ("memories", "instances"):
        pair = getattr(objective, name, None)
        if pair is not None:
            found |= {f"{name}/vis": pair.vis.prototypes.clone(), f"{name}/ir": pair.ir.prototypes.clone()}
    if getattr(objective, "memory", None) is not None:
        found["memory"] = objective.memory.prototypes.clone()
    return found


def train_with_fixed_batches(run: _Run, loader) -> dict:
    """Run `run.train()` with fixed pseudo-labels and batches (`loader(modality, labels, epoch, stream)` -> one
    modality's halves of a pass, one per step), no evaluation; returns the final student and teacher states and
    the memories of each epoch."""
    memories = []
    train_epoch = run._train_epoch

    def train_epoch_and_keep_memories(trained, plan, stage, epoch):
        losses = train_epoch(trained, plan, stage, epoch)
        memories.append({f"{index}/{name}": prototypes for index, training_pass in enumerate(plan.passes)
                         for name, prototypes in objective_memories(training_pass.objective).items()})
        return losses

    replace_method(run, "_plan", lambda phase, stage_epoch, epoch: fixed_plan(run, phase, stage_epoch, epoch))
    replace_method(run, "_loader", lambda modality, labels, uses_views, stage, epoch, stream:
                   loader(modality, labels, epoch, stream))
    replace_method(run, "_evaluate", lambda epoch: None)
    replace_method(run, "_train_epoch", train_epoch_and_keep_memories)
    freeze_batch_norm(run.model)
    run.train()
    return {"model": cloned_state(run.model.state_dict()), "memories": memories,
            "teacher": cloned_state(run.method.teacher().state_dict())}


def reid_rank(rank: int, world_size: int, root: Path, out: Path) -> None:
    """Every scenario on one rank of the group; writes out/rank<r>.pt {scenario: result}."""
    results = {}
    for name, patched in SCENARIOS.items():
        with patched():
            run = _Run(ddp_config(root, out / name), DistributedContext(rank, world_size, torch.device("cpu")))
            if rank == 1:  # DDP must start every rank from rank 0's weights
                perturb_parameters([run.model])
            is_ir = run.data.is_ir
            results[name] = train_with_fixed_batches(
                run, lambda modality, labels, epoch, stream: rank_halves(labels, is_ir, epoch, rank, modality, stream))
    torch.save(results, out / f"rank{rank}.pt")


def reid_reference(rank: int, world_size: int, root: Path, out: Path) -> None:
    """One process: each step on the ranks' batches concatenated in rank order; writes out/reference.pt."""
    run = _Run(ddp_config(root, out), DistributedContext(rank, world_size, torch.device("cpu")))
    is_ir = run.data.is_ir
    rank_batch = run._batch

    def global_batch(vis_halves: list[dict], ir_halves: list[dict], uses_views: bool) -> dict[str, torch.Tensor]:
        parts = [rank_batch(vis, ir, uses_views) for vis, ir in zip(vis_halves, ir_halves)]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def loader(modality, labels, epoch, stream):
        per_rank = [rank_halves(labels, is_ir, epoch, rank, modality, stream) for rank in range(WORLD_SIZE)]
        return list(zip(*per_rank))  # step -> (rank 0's half, rank 1's half)

    replace_method(run, "_batch", global_batch)
    torch.save(train_with_fixed_batches(run, loader), out / "reference.pt")


@pytest.fixture(scope="module")
def reid_runs(tmp_path_factory) -> tuple[dict, list[dict]]:
    """(the one-process reference, [rank 0's, rank 1's] {scenario: {"model", "teacher": states, "memories": [epoch
    dicts]}})."""
    base = tmp_path_factory.mktemp("reid_ddp")
    root = base / "synthetic"
    make_synthetic_sysu(root, num_ids=6, seed=0, images_per_camera=1, height=32, width=16)
    run_in_processes(reid_rank, root, base, rendezvous=base / "rendezvous", world_size=WORLD_SIZE)
    run_in_processes(reid_reference, root, base, rendezvous=base / "rendezvous_reference", world_size=1)
    return torch.load(base / "reference.pt"), [torch.load(base / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def memories_of(result: dict) -> dict[str, torch.Tensor]:
    """The prototypes of every epoch's memories, keyed epoch/pass/memory."""
    return {f"{epoch}/{key}": value
            for epoch, memories in enumerate(result["memories"]) for key, value in memories.items()}


def test_two_processes_train_as_one_on_the_global_batch(reid_runs):
    reference, ranks = reid_runs
    assert len(reference["memories"]) == 2  # both epochs, and in the cross stage every kind of memory and both passes
    assert {"0/memories/vis", "0/instances/ir", "1/memory"} <= set(reference["memories"][1])
    for rank, results in enumerate(ranks):
        assert_states_close(results["ddp"]["model"], reference["model"], f"rank {rank} weights")
        assert_states_close(results["ddp"]["teacher"], reference["teacher"], f"rank {rank} EMA teacher")
        assert_states_close(memories_of(results["ddp"]), memories_of(reference), f"rank {rank} memories")


def test_the_comparison_sees_unaveraged_gradients_and_local_memory_updates(reid_runs):
    """The check above is not vacuous: without DDP, or with memories fed only the local batch, the ranks end
    away from the one-process run."""
    reference, ranks = reid_runs
    for rank, results in enumerate(ranks):
        assert largest_difference(results["local_gradients"]["model"], reference["model"])[0] > 1e-3, rank
        assert largest_difference(memories_of(results["local_memory"]), memories_of(reference))[0] > 1e-2, rank
