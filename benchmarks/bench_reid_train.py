"""Benchmark: the ReID trainer's hot paths with a two-stream network (default: the full AGW ResNet-50 at
288x144; `--arch small --height 64 --width 32 --batch 32` is the embedded benchmark's network): training images/s (forward + backward of images and their translated views, cluster NCE, cross-view
NCE, optimiser step, memory update) and feature-extraction images/s. On CUDA also bf16 autocast +
channels_last against fp32, as a ratio measured in the same run.

    python benchmarks/bench_reid_train.py [--arch agw_resnet50] [--height 288 --width 144] [--batch 8] [--steps 3]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from reid.losses import cross_view_nce
from reid.memories import ClusterMemory
from reid.models import build_model
from reid.runtime import autocast, to_memory_format


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_images_per_second(arch: str, size: tuple[int, int], batch: int, device: torch.device, fast: bool,
                               steps: int) -> float:
    """`batch` images (half visible, half infrared) plus their `batch` translated views per step, size (H, W)."""
    torch.manual_seed(0)
    model = to_memory_format(build_model(arch).to(device), fast).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3.5e-4, weight_decay=5e-4)
    memory = ClusterMemory.from_features(F.normalize(torch.randn(64, model.feature_dim), dim=1),
                                         torch.arange(64) % 32, device=device)
    images = to_memory_format(torch.randn(2 * batch, 3, *size, device=device), fast)
    is_ir = torch.arange(2 * batch, device=device) % 2 == 1
    labels = torch.arange(batch, device=device) % 32

    def step() -> None:
        with autocast(device, fast):
            features = F.normalize(model(images, is_ir)["features"].float(), dim=1)
        own, view = features[:batch], features[batch:]
        loss = memory.loss(own, labels) + memory.loss(view, labels) + cross_view_nce(own, view)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        memory.update(own.detach(), labels)

    step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return 2 * batch * steps / (time.perf_counter() - start)


def extraction_images_per_second(arch: str, size: tuple[int, int], batch: int, device: torch.device, fast: bool,
                                 steps: int) -> float:
    model = to_memory_format(build_model(arch).to(device), fast).eval()
    images = to_memory_format(torch.randn(batch, 3, *size, device=device), fast)
    is_ir = torch.zeros(batch, dtype=torch.bool, device=device)
    with torch.no_grad(), autocast(device, fast):
        model(images, is_ir)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            model(images, is_ir)
        synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="agw_resnet50", help="a reid.models architecture")
    parser.add_argument("--height", type=int, default=288, help="input height")
    parser.add_argument("--width", type=int, default=144, help="input width")
    parser.add_argument("--batch", type=int, default=8, help="images per training step (plus as many views)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps on the CPU")
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--gpu-steps", type=int, default=20)
    args = parser.parse_args()
    cpu, net = torch.device("cpu"), (args.arch, (args.height, args.width))
    print(f"{args.arch} (two-stream, GeM, BN neck), {args.height}x{args.width}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"cpu  training   batch {args.batch}+{args.batch} views: fp32 "
          f"{training_images_per_second(*net, args.batch, cpu, False, args.steps):7.2f} images/s")
    print(f"cpu  extraction batch {2 * args.batch}: fp32 "
          f"{extraction_images_per_second(*net, 2 * args.batch, cpu, False, args.steps):7.2f} images/s")
    if not torch.cuda.is_available():
        print("no CUDA device: GPU figures not measured")
        return
    gpu = torch.device("cuda")
    name = torch.cuda.get_device_name(gpu)
    for label, measure, batch in (("training", training_images_per_second, args.gpu_batch),
                                  ("extraction", extraction_images_per_second, 2 * args.gpu_batch)):
        fp32 = measure(*net, batch, gpu, False, args.gpu_steps)
        fast = measure(*net, batch, gpu, True, args.gpu_steps)
        print(f"{name} {label} batch {batch}: fp32 {fp32:8.1f} images/s, bf16+channels_last {fast:8.1f} images/s "
              f"({fast / fp32:.2f}x)")


if __name__ == "__main__":
    main()
