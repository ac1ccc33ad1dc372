"""Helpers for the tests that check multi-process training against one process on the global batch: run a
function in two CPU processes joined in a gloo group, compare state dicts."""
from __future__ import annotations

import multiprocessing
import sys
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing

COLLECTIVE_TIMEOUT = timedelta(seconds=120)  # a rank stuck in a collective fails the test instead of hanging it


def run_in_processes(worker: Callable[..., None], *args, rendezvous: Path, world_size: int = 2) -> None:
    """Call worker(rank, world_size, *args) in `world_size` processes joined in a gloo process group (with one
    process: a reference run that leaves this process's RNGs, threads and devices alone).

    rendezvous: a file that does not exist yet (a fresh one per call); the group meets through it, so no port is
    chosen here (gloo's own connections take ports the OS hands out). An exception in any process ends the others
    and raises here with that process's traceback. Each process runs torch on one thread.
    """
    if Path(rendezvous).exists():
        raise FileExistsError(f"rendezvous file {rendezvous} exists already: give each run a fresh path")
    torch.multiprocessing.start_processes(_join_group, args=(world_size, str(rendezvous), worker, args),
                                          nprocs=world_size, start_method=start_method())


def start_method() -> str:
    """fork: the children inherit the imported toolkit and start in well under a second (spawned ones import torch
    and the toolkit again, 6-15 s each on the shared 2-core machine). spawn when a forked child could not train:
    once this process has initialised CUDA, which a forked child cannot touch (checkpoints save the CUDA RNG states
    when CUDA is present), or once autograd's device threads have started here (after an earlier test's
    torch.export, for one), when torch refuses a backward pass in a forked child
    (https://github.com/pytorch/pytorch/wiki/Autograd-and-Fork). With spawn, `worker` must be a module-level
    function."""
    return "fork" if not torch.cuda.is_initialized() and forked_child_can_backward() else "spawn"


def forked_child_can_backward() -> bool:
    """Whether a child forked now can run a backward pass (a forked probe tries one)."""
    probe = multiprocessing.get_context("fork").Process(target=_backward_or_exit_1)
    probe.start()
    probe.join()
    return probe.exitcode == 0


def _backward_or_exit_1() -> None:
    try:
        torch.ones(1, requires_grad=True).sum().backward()
    except RuntimeError:
        sys.exit(1)  # quietly: the caller only reads the exit code


def all_reduced_backward(rank: int, world_size: int) -> None:
    """A worker for `run_in_processes`: each rank's backward pass, then the sum of the gradients across ranks."""
    weight = torch.ones(1, requires_grad=True)
    (weight * (rank + 1)).sum().backward()
    dist.all_reduce(weight.grad)
    assert weight.grad.item() == world_size * (world_size + 1) / 2


def _join_group(rank: int, world_size: int, rendezvous: str, worker: Callable[..., None], args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size,
                            timeout=COLLECTIVE_TIMEOUT)
    try:
        worker(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def perturb_parameters(modules: list[torch.nn.Module], by: float = 0.01) -> None:
    """Add `by` to every parameter: a rank that starts away from rank 0's weights."""
    with torch.no_grad():
        for module in modules:
            for parameter in module.parameters():
                parameter.add_(by)


def cloned_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (tensors only)."""
    return {key: value.detach().cpu().clone() for key, value in state.items()}


def largest_difference(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> tuple[float, str]:
    """(max |actual - expected| over every tensor, the key where it occurs); the keys must match."""
    if actual.keys() != expected.keys():
        raise KeyError(f"state keys differ: only in actual {sorted(actual.keys() - expected.keys())}, "
                       f"only in expected {sorted(expected.keys() - actual.keys())}")
    differences = {key: (actual[key].double() - expected[key].double()).abs().max().item()
                   for key in expected if expected[key].numel()}
    key = max(differences, key=differences.get)
    return differences[key], key


def assert_states_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str,
                        atol: float = 1e-5) -> None:
    """Every tensor of `actual` within `atol` of `expected`; the message names `what` and the worst key."""
    difference, key = largest_difference(actual, expected)
    assert difference <= atol, f"{what}: {key} differs by {difference:.3g} (> {atol})"
