"""Two CPU processes (gloo): per-rank sampling, rank-0 writes under torchrun, and the weights after three steps
equal one process's on the global batch (gradients averaged, rank 0's initial weights broadcast)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import yaml
from torch import nn

import vi_translate.cyclegan as cyclegan
import vi_translate.train as vi_train
from distributed_helpers import assert_states_close, largest_difference, perturb_parameters, run_in_processes
from reid.checkpoint import load_checkpoint
from reid.config import config_from_dict
from reid.data import make_synthetic_sysu
from reid.runtime import DistributedContext, average_gradients
from translator_helpers import tiny_translator_config
from vi_translate.config import TranslatorConfig
from vi_translate.data import plan_epoch
from vi_translate.train import _Trainer

REPO = Path(__file__).resolve().parents[2]


def test_ranks_split_each_epoch_without_overlap():
    plans = [plan_epoch(21, 9, epoch=3, seed=0, batch_size=2, rank=r, world_size=2) for r in (0, 1)]
    single = plan_epoch(21, 9, epoch=3, seed=0, batch_size=2)
    assert len(plans[0].items) == len(plans[1].items) == 10
    assert sorted(plans[0].items + plans[1].items) == sorted(single.items[:20])
    assert plans[0].steps == 5 and plans[0].from_step(4) == plans[0].items[8:10]
    assert plan_epoch(21, 9, epoch=4, seed=0, batch_size=2).items != single.items  # reshuffled each epoch


def test_torchrun_two_processes(tmp_path):
    data = tmp_path / "synthetic"
    make_synthetic_sysu(data, num_ids=6, seed=0, images_per_camera=1, height=32, width=16)
    config = {"data": {"name": "synthetic", "root": str(data)},
              "image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
              "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
              "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "max_steps": 4, "log_every": 2,
                        "sample_every": 4, "checkpoint_every": 2},
              "runtime": {"device": "cpu", "workers": 0}, "output_dir": str(tmp_path / "run")}
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
               "-m", "vi_translate.cli", "--log-level", "WARNING", "train", str(tmp_path / "ddp.yaml")]
    result = subprocess.run(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert checkpoint["step"] == 4 and checkpoint["state"]["position"]["step_in_epoch"] == 4  # 10 items / 2 ranks / 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]  # written once, by rank 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state"]["nets"]["g_vis2ir"].values())


# --------------------------------------------------------------------------- two processes == one on the global batch
# `_Trainer.run` runs for real in two gloo processes of batch 2 and in one process of batch 4. `plan_epoch` gives
# rank r the items r, r + 2, ..., so each global batch of 4 is the two ranks' batches of 2; every loss is a mean over
# the batch's images (instance norm, no batch statistics), so averaging the ranks' gradients gives the global
# batch's. The history pool is off (pool_size 0): each rank's pool would hand back its own earlier fakes. Rank 1
# starts from perturbed weights, which `broadcast_parameters` must replace by rank 0's. Not compared: the biases of
# convolutions followed by an affine-free instance norm, which subtracts each channel's mean, so their gradient is
# zero up to rounding, and Adam (dividing by sqrt(v) + 1e-8) turns rounding noise into steps of about lr either way
# (about 5e-4 after three steps); every other tensor agrees within 1e-6. Adam's steps hardly change when every
# gradient is twice as large, so the optimisers' first moments (the running mean of the averaged gradients) are
# compared too: they catch a sum where a mean belongs.

WORLD_SIZE = 2
STEPS = 3


def summed_gradients(modules: list[nn.Module]) -> None:
    """`average_gradients` without its division: every rank gets the sum of the ranks' gradients."""
    average_gradients(modules)
    for module in modules:
        for parameter in module.parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(dist.get_world_size())


SCENARIOS = {
    "averaged": lambda: contextlib.nullcontext(),
    "local_gradients": lambda: mock.patch.object(cyclegan, "average_gradients", lambda modules: None),
    "no_broadcast": lambda: mock.patch.object(vi_train, "broadcast_parameters", lambda modules: None),
    "summed": lambda: mock.patch.object(cyclegan, "average_gradients", summed_gradients),
}


def global_batch_config(data: Path, out: Path, batch_size: int) -> TranslatorConfig:
    train = {"batch_size": batch_size, "max_steps": STEPS, "pool_size": 0, "log_every": 100, "sample_every": 100,
             "checkpoint_every": 100}
    return config_from_dict(TranslatorConfig, tiny_translator_config(data, out, **train))


def nets_state(trainer: _Trainer) -> dict[str, torch.Tensor]:
    """The networks' parameters and buffers, keyed net/name, less `biases_before_instance_norm`."""
    skipped = biases_before_instance_norm(trainer.nets.modules())
    return {f"{net}/{key}": value.detach().clone() for net, module in trainer.nets.modules().items()
            for key, value in module.state_dict().items() if f"{net}/{key}" not in skipped}


def first_moments(trainer: _Trainer) -> dict[str, torch.Tensor]:
    """Adam's exp_avg of every parameter, keyed optimizer/index."""
    return {f"{name}/{index}": state["exp_avg"].clone()
            for name, optimizer in (("g", trainer.tools.optimizer_g), ("d", trainer.tools.optimizer_d))
            for index, state in optimizer.state_dict()["state"].items()}


def trained_state(trainer: _Trainer) -> dict[str, dict[str, torch.Tensor]]:
    """{"nets": nets_state, "moments": first_moments}."""
    return {"nets": nets_state(trainer), "moments": first_moments(trainer)}


def biases_before_instance_norm(nets: dict[str, nn.Module]) -> set[str]:
    """Keys net/name of the biases of convolutions that an affine-free InstanceNorm follows in a Sequential."""
    keys = set()
    for net, module in nets.items():
        for prefix, sequential in module.named_modules():
            if not isinstance(sequential, nn.Sequential):
                continue
            children = list(sequential.named_children())
            for (name, layer), (_, following) in zip(children, children[1:]):
                if isinstance(layer, nn.modules.conv._ConvNd) and layer.bias is not None and \
                        isinstance(following, nn.InstanceNorm2d) and not following.affine:
                    keys.add(f"{net}/{prefix}.{name}.bias" if prefix else f"{net}/{name}.bias")
    return keys


def translator_rank(rank: int, world_size: int, data: Path, out: Path) -> None:
    """Every scenario on one rank (batch 2); writes out/rank<r>.pt {scenario: trained_state}."""
    results = {}
    for name, patched in SCENARIOS.items():
        with patched():
            trainer = _Trainer(global_batch_config(data, out / name, batch_size=2),
                               DistributedContext(rank, world_size, torch.device("cpu")))
            if rank == 1:
                perturb_parameters(list(trainer.nets.modules().values()))
            trainer.run(None)
        results[name] = trained_state(trainer)
    torch.save(results, out / f"rank{rank}.pt")


def translator_reference(rank: int, world_size: int, data: Path, out: Path) -> None:
    """One process of batch 4; writes out/reference.pt (trained_state)."""
    trainer = _Trainer(global_batch_config(data, out / "reference", batch_size=4),
                       DistributedContext(rank, world_size, torch.device("cpu")))
    trainer.run(None)
    torch.save(trained_state(trainer), out / "reference.pt")


@pytest.fixture(scope="module")
def translator_runs(tiny_dataset, tmp_path_factory) -> tuple[dict, list[dict]]:
    """(the one-process batch-4 trained_state, [rank 0's, rank 1's] {scenario: trained_state})."""
    base = tmp_path_factory.mktemp("translator_ddp")
    run_in_processes(translator_rank, tiny_dataset, base, rendezvous=base / "rendezvous", world_size=WORLD_SIZE)
    run_in_processes(translator_reference, tiny_dataset, base, rendezvous=base / "rendezvous_reference", world_size=1)
    return torch.load(base / "reference.pt"), [torch.load(base / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def test_two_processes_train_as_one_on_the_global_batch(translator_runs):
    reference, ranks = translator_runs
    for rank, results in enumerate(ranks):
        assert_states_close(results["averaged"]["nets"], reference["nets"], f"rank {rank} nets")
        # float noise reaches about 5e-6 on moments up to about 3
        assert_states_close(results["averaged"]["moments"], reference["moments"], f"rank {rank} Adam moments",
                            atol=1e-4)


def test_the_comparison_sees_unaveraged_gradients_and_a_missing_broadcast(translator_runs):
    """The check above is not vacuous: without the all-reduce, or without rank 0's initial weights on rank 1,
    the ranks end away from the one-process run; with the ranks' sum for their mean, the moments do."""
    reference, ranks = translator_runs
    for rank, results in enumerate(ranks):
        assert largest_difference(results["local_gradients"]["nets"], reference["nets"])[0] > 1e-4, rank
        assert largest_difference(results["no_broadcast"]["nets"], reference["nets"])[0] > 1e-4, rank
        assert largest_difference(results["summed"]["moments"], reference["moments"])[0] > 1e-2, rank
