"""Benchmark: `vi-translate translate` (DataLoader decoding, batched inference, writer threads) against
a straightforward one-image-at-a-time loop (read, translate, resize back, save), in images/s.

A synthetic SYSU-layout dataset (128x64 images) is written to a temporary folder; translators with
random weights stand in for trained ones (speed does not depend on the weights): the synthetic
config's size (ngf 16, 3 blocks, 64x32) and the reference size (ngf 64, 9 blocks, 256x128).

    python benchmarks/bench_translate.py [--num-ids 30] [--batch-size 16] [--workers 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from reid.config import config_to_dict
from reid.data import load_dataset, make_synthetic_sysu, read_image
from reid.runtime import resolve_device
from vi_translate.checkpoint import save_translator_checkpoint
from vi_translate.config import ImageConfig, NetworkConfig, TranslatorConfig
from vi_translate.cyclegan import build_nets
from vi_translate.data import image_mode, resize_for_model, to_image, to_model_range
from vi_translate.translate import translate_records

SIZES = {
    "synthetic (ngf 16, 3 blocks, 64x32)": (NetworkConfig(ngf=16, ndf=16, n_blocks=3),
                                            ImageConfig(load_height=72, load_width=36, crop_height=64, crop_width=32)),
    "reference (ngf 64, 9 blocks, 256x128)": (NetworkConfig(), ImageConfig()),
}


def write_checkpoint(path: Path, network: NetworkConfig, image: ImageConfig) -> Path:
    config = dataclasses.replace(TranslatorConfig(), model=network, image=image)
    nets = build_nets(network, image.ir_channels)
    state = {"nets": {name: module.state_dict() for name, module in nets.modules().items()}}
    return save_translator_checkpoint(path, config=config_to_dict(config), step=0, state=state)


def one_at_a_time(records, root: Path, out: Path, network: NetworkConfig, image: ImageConfig, device) -> float:
    """The straightforward loop: one image read, translated, resized back and saved at a time."""
    nets = build_nets(network, image.ir_channels)
    generators = {"vis": nets.g_vis2ir.to(device).eval(), "ir": nets.g_ir2vis.to(device).eval()}
    start = time.perf_counter()
    for record in records:
        source = read_image(record.path, image_mode(record.modality, image.ir_channels))
        with torch.no_grad():
            translated = generators[record.modality](to_model_range(resize_for_model(source, image))[None].to(device))
        target = out / Path(record.path).relative_to(root).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        to_image(translated[0]).resize(source.size, Image.BICUBIC).save(target)
    return len(records) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-ids", type=int, default=30, help="identities in the synthetic dataset")
    parser.add_argument("--limit", type=int, default=600, help="images translated per measurement (synthetic size)")
    parser.add_argument("--reference-limit", type=int, default=48, help="images per measurement (reference size)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_synthetic_sysu(tmp / "data", num_ids=args.num_ids, seed=0)
        records = load_dataset("synthetic", tmp / "data").train
        print(f"{len(records)} training images (128x64), device {device}, {torch.get_num_threads()} torch threads, "
              f"batch {args.batch_size}, {args.workers} workers")
        for name, (network, image) in SIZES.items():
            limit = args.limit if network.n_blocks == 3 else args.reference_limit
            subset = records[:: max(1, len(records) // limit)][:limit]
            checkpoint = write_checkpoint(tmp / f"{network.n_blocks}.pt", network, image)
            loop = one_at_a_time(subset, tmp / "data", tmp / f"loop{network.n_blocks}", network, image, device)
            summary = translate_records(checkpoint, subset, tmp / "data", tmp / f"job{network.n_blocks}", device=device,
                                        batch_size=args.batch_size, workers=args.workers)
            print(f"{name:<40} {len(subset):>4} images: loop {loop:7.1f} images/s, translate {summary.images_per_s:7.1f} "
                  f"images/s ({summary.images_per_s / loop:.1f}x)")


if __name__ == "__main__":
    main()
