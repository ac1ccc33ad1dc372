"""Multi-process training under `torchrun --nproc_per_node=N`: process-group set-up, parameter
broadcast, gradient averaging.

Gradients are averaged explicitly after each backward instead of wrapping the networks in
DistributedDataParallel: a CycleGAN step runs each generator three times per backward (translation,
reconstruction, identity) and runs the frozen discriminators inside the generator step, which DDP's
one-forward-one-backward bookkeeping does not model. Instance norm has no running statistics, so
nothing else needs synchronising.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from reid.runtime import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    """rank / world_size of this process (0 / 1 without torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_spec: str) -> DistributedContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on the CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistributedContext(0, 1, resolve_device(device_spec))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank, world_size, device)


def broadcast_parameters(modules: list[nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers."""
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(modules: list[nn.Module]) -> None:
    """Average the gradients of `modules` over all ranks, in one all-reduce."""
    grads = [p.grad for module in modules for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for grad, averaged in zip(grads, flat.split([grad.numel() for grad in grads])):
        grad.copy_(averaged.view_as(grad))


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
