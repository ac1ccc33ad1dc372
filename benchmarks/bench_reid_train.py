"""Benchmark: the ReID trainer's hot paths with a two-stream network (default: the full AGW ResNet-50 at
288x144; `--arch small --height 64 --width 32 --batch 32` is the embedded benchmark's network): training images/s (forward + backward of images and their translated views, cluster NCE, cross-view
NCE, optimiser step, memory update) and feature-extraction images/s. On CUDA also bf16 autocast +
channels_last against fp32, as a ratio measured in the same run.

    python benchmarks/bench_reid_train.py [--arch agw_resnet50] [--height 288 --width 144] [--batch 8] [--steps 3]

--device cpu|cuda measures on that device only, fp32 and then bf16 + channels_last (on the CPU the toolkit's
autocast is off, so that second figure is fp32 + channels_last). --no-views trains on the batch alone (cluster
NCE, no translated views and no cross-view NCE: the field's methods), --training-only leaves out extraction,
--json ends the output with one JSON line of every figure. The SYSU recipe's step (16 infrared identities x 16
images, 8 visible x 16 each twice under CAJ: 512 images):

    python benchmarks/bench_reid_train.py --device cuda --gpu-batch 512 --no-views --training-only --json
"""
from __future__ import annotations

import argparse
import json
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
                               steps: int, *, views: bool = True, warmup: int = 1) -> float:
    """`batch` images (half visible, half infrared) plus, with `views`, their `batch` translated views per step,
    size (H, W); images/s counts the views."""
    torch.manual_seed(0)
    model = to_memory_format(build_model(arch).to(device), fast).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3.5e-4, weight_decay=5e-4)
    memory = ClusterMemory.from_features(F.normalize(torch.randn(64, model.feature_dim), dim=1),
                                         torch.arange(64) % 32, device=device)
    inputs = 2 * batch if views else batch
    images = to_memory_format(torch.randn(inputs, 3, *size, device=device), fast)
    is_ir = torch.arange(inputs, device=device) % 2 == 1
    labels = torch.arange(batch, device=device) % 32

    def step() -> None:
        with autocast(device, fast):
            features = F.normalize(model(images, is_ir)["features"].float(), dim=1)
        own = features[:batch]
        loss = memory.loss(own, labels)
        if views:
            view = features[batch:]
            loss = loss + memory.loss(view, labels) + cross_view_nce(own, view)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        memory.update(own.detach(), labels)

    for _ in range(warmup):
        step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return inputs * steps / (time.perf_counter() - start)


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
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        help="measure on this device only, fp32 and bf16 + channels_last (default: fp32 on the CPU, "
                             "then both on CUDA when present)")
    parser.add_argument("--no-views", action="store_true",
                        help="train on the batch alone: no translated views, no cross-view NCE")
    parser.add_argument("--training-only", action="store_true", help="leave out the extraction figures")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before each measurement")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    cpu, net = torch.device("cpu"), (args.arch, (args.height, args.width))
    views, warmup = not args.no_views, args.warmup
    print(f"{args.arch} (two-stream, GeM, BN neck), {args.height}x{args.width}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    rows = []

    def described(batch: int) -> str:
        return f"{batch}+{batch} views" if views else f"{batch}, no views"

    if args.device in (None, "cpu"):
        fp32 = training_images_per_second(*net, args.batch, cpu, False, args.steps, views=views, warmup=warmup)
        row = {"device": "cpu", "kind": "training", "batch": args.batch, "views": views, "fp32": round(fp32, 3)}
        if args.device == "cpu":
            fast = training_images_per_second(*net, args.batch, cpu, True, args.steps, views=views, warmup=warmup)
            row |= {"fast": round(fast, 3), "ratio": round(fast / fp32, 3)}
            print(f"cpu  training   batch {described(args.batch)}: fp32 {fp32:7.2f} images/s, channels_last "
                  f"(no bf16 on the CPU) {fast:7.2f} images/s ({fast / fp32:.2f}x)")
        else:
            print(f"cpu  training   batch {described(args.batch)}: fp32 {fp32:7.2f} images/s")
        rows.append(row)
        if not args.training_only:
            fp32 = extraction_images_per_second(*net, 2 * args.batch, cpu, False, args.steps)
            print(f"cpu  extraction batch {2 * args.batch}: fp32 {fp32:7.2f} images/s")
            rows.append({"device": "cpu", "kind": "extraction", "batch": 2 * args.batch, "fp32": round(fp32, 3)})
    if args.device in (None, "cuda") and torch.cuda.is_available():
        gpu = torch.device("cuda")
        name = torch.cuda.get_device_name(gpu)
        kinds = [("training", lambda *a: training_images_per_second(*a, views=views, warmup=warmup), args.gpu_batch)]
        if not args.training_only:
            kinds.append(("extraction", extraction_images_per_second, 2 * args.gpu_batch))
        for label, measure, batch in kinds:
            fp32 = measure(*net, batch, gpu, False, args.gpu_steps)
            fast = measure(*net, batch, gpu, True, args.gpu_steps)
            shown = f"{batch}, no views" if label == "training" and not views else f"{batch}"
            print(f"{name} {label} batch {shown}: fp32 {fp32:8.1f} images/s, bf16+channels_last {fast:8.1f} "
                  f"images/s ({fast / fp32:.2f}x)")
            rows.append({"device": "cuda", "device_name": name, "kind": label, "batch": batch,
                         **({"views": views} if label == "training" else {}), "fp32": round(fp32, 3),
                         "fast": round(fast, 3), "ratio": round(fast / fp32, 3)})
    elif args.device is None:
        print("no CUDA device: GPU figures not measured")
    if args.json:
        print(json.dumps({"benchmark": "reid_train", "arch": args.arch, "height": args.height, "width": args.width,
                          "warmup": warmup, "steps": {"cpu": args.steps, "cuda": args.gpu_steps}, "rows": rows}))

if __name__ == "__main__":
    main()
