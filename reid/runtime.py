"""Runtime helpers: seeding and RNG state capture, device choice, bf16 autocast, channels_last,
logging set-up and progress bars."""
from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

T = TypeVar("T")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: derive python and numpy seeds from the worker's torch seed,
    so augmentations differ between workers and repeat between runs."""
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def make_generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `seed` (for DataLoader shuffling and samplers)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def capture_rng_state() -> dict:
    """The state of every global RNG (python, numpy, torch CPU and CUDA), weights_only-safe."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": _tuples_to_lists(random.getstate()),
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_state["state"]["pos"]),
                  "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Restore the RNGs saved by `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
                         "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples_to_lists(value):
    return [_tuples_to_lists(v) for v in value] if isinstance(value, tuple) else value


# --------------------------------------------------------------------------- devices and precision


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn "auto" | "cpu" | "cuda" | "cuda:N" into a torch.device; error when CUDA is asked for but absent."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {spec!r} was asked for, but CUDA is not available on this machine; "
                               "use device=cpu or device=auto")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    raise ValueError(f"unknown device {spec!r}: expected auto, cpu, cuda or cuda:N")


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `enabled`; a no-op context on the CPU (fp32 there)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(device: torch.device, enabled: bool = True) -> bool:
    """Whether to use the channels_last memory format: on CUDA when enabled."""
    return enabled and device.type == "cuda"


def to_memory_format(x: T, channels_last: bool) -> T:
    """Move a 4-D tensor or a module to channels_last when asked; return it unchanged otherwise."""
    return x.to(memory_format=torch.channels_last) if channels_last else x


# --------------------------------------------------------------------------- logging and progress


class _TqdmHandler(logging.StreamHandler):
    """Writes log lines through tqdm so they do not break progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(level: str | int = "INFO", log_file: str | os.PathLike | None = None) -> None:
    """Send the toolkit's log records (`reid`, `vi_translate`, `experiments`) to stderr and,
    optionally, a file. Safe to call more than once."""
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S")
    handlers: list[logging.Handler] = [_TqdmHandler()]
    if log_file is not None:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for name in ("reid", "vi_translate", "experiments"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in handlers:
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None,
             unit: str = "it", disable: bool | None = None, **kwargs) -> Iterator[T]:
    """A tqdm bar that stays quiet when stderr is not a terminal (logs, CI), unless `disable=False`."""
    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True,
                leave=False, **kwargs)

# --------------------------------------------------------------------------- multi-process (torchrun)
# Gradients are averaged explicitly (`average_gradients`) where DistributedDataParallel's
# one-forward-one-backward bookkeeping does not fit, e.g. a CycleGAN step that runs each generator three
# times per backward and the frozen discriminators inside the generator step.


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
