"""Benchmark: the training augmentation of one step, as the loader workers do it (one PIL image at a time,
`build_train_transform`) against the batch path (`gpu_augment` on whole normalised batches, what runs on the
GPU, or on the CPU with `train.preload_images`), for the three kinds of a step under CAJ: visible colour copies,
channel-exchanged copies (with PGM's colour jitter when --jitter > 0) and infrared images with adaptive grey.

    python benchmarks/bench_augment.py [--height 288 --width 144] [--batch 128] [--jitter 0.5] [--repeats 3]

Both paths start from decoded images of the input size (the workers' resize and the preload's are left out)
and end with augmented, normalised tensors; images/s is over all three kinds. On CUDA the batch path runs on
the GPU (synchronised), the per-image path on one CPU core as one loader worker would.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image

from reid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_train_transform, gpu_augment

KINDS = {"vis": {"channel_op": None}, "vis_exchanged": {"channel_op": "exchange"},
         "ir": {"channel_op": "adaptive_grey"}}


def kinds(jitter: float) -> dict[str, dict]:
    """kind -> the options of its augmentation (the exchanged copies get the colour jitter)."""
    return {name: {**options, "color_jitter": jitter if name == "vis_exchanged" else 0.0}
            for name, options in KINDS.items()}


def per_image_rate(images: list[Image.Image], height: int, width: int, jitter: float, repeats: int) -> float:
    """Images/s of the CPU transforms, one PIL image at a time (resize included, as in a worker)."""
    transforms = [build_train_transform(height, width, **options) for options in kinds(jitter).values()]
    torch.manual_seed(0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for transform in transforms:
            for image in images:
                transform(image)
        best = min(best, time.perf_counter() - start)
    return len(transforms) * len(images) / best


def batch_rate(batch: torch.Tensor, jitter: float, repeats: int, device: torch.device) -> float:
    """Images/s of `gpu_augment` on the whole normalised batch [B, 3, H, W], once per kind."""
    generator = torch.Generator(device=device).manual_seed(0)
    batch = batch.to(device)

    def run() -> None:
        for options in kinds(jitter).values():
            gpu_augment(batch, pad=10, flip=True, erasing=0.5, generator=generator, **options)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return len(KINDS) * batch.shape[0] / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=288, help="image height (default 288, the references')")
    parser.add_argument("--width", type=int, default=144, help="image width (default 144)")
    parser.add_argument("--batch", type=int, default=128, help="images per kind and step (default 128: the "
                                                               "references' visible half)")
    parser.add_argument("--jitter", type=float, default=0.5, help="colour jitter of the exchanged copies "
                                                                  "(default 0.5, PGM's; 0: ADCA / PCLHD)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, the fastest counts (default 3)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (args.batch, args.height, args.width, 3), dtype=np.uint8)
    images = [Image.fromarray(array) for array in pixels]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    batch = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - mean) / std
    cpu = per_image_rate(images, args.height, args.width, args.jitter, args.repeats)
    batched = batch_rate(batch, args.jitter, args.repeats, device)
    print(f"{args.batch} images per kind at {args.height}x{args.width}, jitter {args.jitter}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"  per image (PIL, one worker)   {cpu:9.0f} images/s")
    print(f"  batch ({device.type:4s})               {batched:9.0f} images/s")
    print(f"  batch / per image: {batched / cpu:.1f}x")


if __name__ == "__main__":
    main()
