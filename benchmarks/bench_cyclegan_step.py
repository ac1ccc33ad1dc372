"""Benchmark: one full CycleGAN training step (both generators, then both discriminators) with the
reference networks (ngf = ndf = 64, 9 blocks, 70x70 PatchGAN) on 256x128 person images.

Prints images/s for batch 1 and 8: fp32 on the CPU here; on CUDA also bf16 autocast + channels_last,
with the ratio against fp32 measured in the same run.

    python benchmarks/bench_cyclegan_step.py [--steps 3] [--batch-sizes 1 8]
"""
from __future__ import annotations

import argparse
import time

import torch

from reid.runtime import autocast, to_memory_format
from vi_translate.config import NetworkConfig, TranslatorTrainConfig
from vi_translate.cyclegan import StepTools, build_nets, train_step


def images_per_second(batch_size: int, device: torch.device, fast: bool, steps: int) -> float:
    """Median-free simple timing: one warm-up step, then `steps` timed steps."""
    torch.manual_seed(0)
    nets = build_nets(NetworkConfig(), ir_channels=3)
    for module in nets.modules().values():
        to_memory_format(module.to(device), fast)
    generators = {m: torch.Generator().manual_seed(1) for m in ("vis", "ir")}
    tools = StepTools.build(nets, TranslatorTrainConfig(), 3, generators)
    tools.autocast = autocast(device, enabled=fast)
    vis = to_memory_format(torch.rand(batch_size, 3, 256, 128, device=device) * 2 - 1, fast)
    ir = to_memory_format(torch.rand(batch_size, 3, 256, 128, device=device) * 2 - 1, fast)
    train_step(nets, vis, ir, tools)  # warm-up (kernel selection, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(nets, vis, ir, tools)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement (CPU)")
    parser.add_argument("--gpu-steps", type=int, default=20, help="timed steps per measurement (CUDA)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    print(f"CycleGAN training step, 256x128, ngf=ndf=64, 9 blocks; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    for batch_size in args.batch_sizes:
        cpu = images_per_second(batch_size, torch.device("cpu"), fast=False, steps=args.steps)
        print(f"cpu   batch {batch_size}: fp32 {cpu:8.2f} images/s")
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        for batch_size in args.batch_sizes:
            fp32 = images_per_second(batch_size, device, fast=False, steps=args.gpu_steps)
            fast = images_per_second(batch_size, device, fast=True, steps=args.gpu_steps)
            print(f"{name} batch {batch_size}: fp32 {fp32:8.1f} images/s, bf16+channels_last {fast:8.1f} images/s "
                  f"({fast / fp32:.2f}x)")
    else:
        print("no CUDA device: GPU figures not measured")


if __name__ == "__main__":
    main()
