"""Benchmark: one full CycleGAN training step (both generators, then both discriminators) with the
reference networks (ngf = ndf = 64, 9 blocks, 70x70 PatchGAN) on 256x128 person images.

Prints images/s for batch 1 and 8: fp32 on the CPU here; on CUDA also bf16 autocast + channels_last,
with the ratio against fp32 measured in the same run.

    python benchmarks/bench_cyclegan_step.py [--steps 3] [--batch-sizes 1 8]

--device cpu|cuda measures on that device only, fp32 and then bf16 + channels_last (on the CPU the toolkit's
autocast is off, so that second figure is fp32 + channels_last). --height/--width and --ngf/--ndf/--n-blocks
change the images and networks (e.g. tiny ones for a smoke run), --json ends the output with one JSON line of
every figure:

    python benchmarks/bench_cyclegan_step.py --device cuda --batch-sizes 4 --gpu-steps 20 --json
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from reid.runtime import autocast, to_memory_format
from vi_translate.config import NetworkConfig, TranslatorTrainConfig
from vi_translate.cyclegan import StepTools, build_nets, train_step


def images_per_second(batch_size: int, device: torch.device, fast: bool, steps: int, *,
                      size: tuple[int, int] = (256, 128), network: NetworkConfig | None = None,
                      warmup: int = 1) -> float:
    """Median-free simple timing: `warmup` warm-up steps, then `steps` timed steps, on images of `size` (H, W)."""
    torch.manual_seed(0)
    nets = build_nets(network or NetworkConfig(), ir_channels=3)
    for module in nets.modules().values():
        to_memory_format(module.to(device), fast)
    generators = {m: torch.Generator().manual_seed(1) for m in ("vis", "ir")}
    tools = StepTools.build(nets, TranslatorTrainConfig(), 3, generators)
    tools.autocast = autocast(device, enabled=fast)
    vis = to_memory_format(torch.rand(batch_size, 3, *size, device=device) * 2 - 1, fast)
    ir = to_memory_format(torch.rand(batch_size, 3, *size, device=device) * 2 - 1, fast)
    for _ in range(warmup):
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
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        help="measure on this device only, fp32 and bf16 + channels_last (default: fp32 on the CPU, "
                             "then both on CUDA when present)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before each measurement")
    parser.add_argument("--height", type=int, default=256, help="image height")
    parser.add_argument("--width", type=int, default=128, help="image width")
    parser.add_argument("--ngf", type=int, default=64, help="generator width")
    parser.add_argument("--ndf", type=int, default=64, help="discriminator width")
    parser.add_argument("--n-blocks", type=int, default=9, help="generator residual blocks")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    network = NetworkConfig(ngf=args.ngf, ndf=args.ndf, n_blocks=args.n_blocks)
    options = {"size": (args.height, args.width), "network": network, "warmup": args.warmup}
    widths = f"ngf=ndf={args.ngf}" if args.ndf == args.ngf else f"ngf={args.ngf}, ndf={args.ndf}"
    print(f"CycleGAN training step, {args.height}x{args.width}, {widths}, {args.n_blocks} blocks; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    rows = []
    if args.device in (None, "cpu"):
        for batch_size in args.batch_sizes:
            cpu = images_per_second(batch_size, torch.device("cpu"), fast=False, steps=args.steps, **options)
            row = {"device": "cpu", "batch": batch_size, "fp32": round(cpu, 3)}
            if args.device == "cpu":
                fast = images_per_second(batch_size, torch.device("cpu"), fast=True, steps=args.steps, **options)
                row |= {"fast": round(fast, 3), "ratio": round(fast / cpu, 3)}
                print(f"cpu   batch {batch_size}: fp32 {cpu:8.2f} images/s, channels_last (no bf16 on the CPU) "
                      f"{fast:8.2f} images/s ({fast / cpu:.2f}x)")
            else:
                print(f"cpu   batch {batch_size}: fp32 {cpu:8.2f} images/s")
            rows.append(row)
    if args.device in (None, "cuda") and torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        for batch_size in args.batch_sizes:
            fp32 = images_per_second(batch_size, device, fast=False, steps=args.gpu_steps, **options)
            fast = images_per_second(batch_size, device, fast=True, steps=args.gpu_steps, **options)
            print(f"{name} batch {batch_size}: fp32 {fp32:8.1f} images/s, bf16+channels_last {fast:8.1f} images/s "
                  f"({fast / fp32:.2f}x)")
            rows.append({"device": "cuda", "device_name": name, "batch": batch_size, "fp32": round(fp32, 3),
                         "fast": round(fast, 3), "ratio": round(fast / fp32, 3)})
    elif args.device is None:
        print("no CUDA device: GPU figures not measured")
    if args.json:
        print(json.dumps({"benchmark": "cyclegan_step", "height": args.height, "width": args.width,
                          "ngf": args.ngf, "ndf": args.ndf, "n_blocks": args.n_blocks, "warmup": args.warmup,
                          "steps": {"cpu": args.steps, "cuda": args.gpu_steps}, "rows": rows}))


if __name__ == "__main__":
    main()
