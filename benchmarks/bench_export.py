"""Benchmark: exported models (`vireid export`, `vi-translate export`) against the PyTorch model they come from.

For the ReID network (default AGW ResNet-50 at 288x144, one stem, L2-normalised features) and the SYSU recipe's
translator generator (ngf 64, 9 blocks, 256x128), both from random initialisation with non-trivial BatchNorm
statistics: the time to export each format, the largest difference from PyTorch on a batch (the graph's own
check, `reid.export.export_graph`, plus a batch of another size here), and inference images/s of onnxruntime and
TorchScript against PyTorch eager on the same batch and threads, as ratios measured in the same run.

    python benchmarks/bench_export.py [--arch agw_resnet50] [--batch 8] [--repeats 3] [--no-normalise]
                                      [--skip-translator]

ONNX needs `pip install -e '.[onnx]'` (the `test` extra has it); without it the ONNX rows say so and TorchScript is
still measured. CPU only (onnxruntime's CPU provider).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from reid.config import ModelConfig, load_config
from reid.export import SUFFIXES, ExportError, embedding_module, export_reid_model, require_onnx, run_exported
from reid.models import build_model
from vi_translate.config import TranslatorConfig
from vi_translate.cyclegan import build_nets
from vi_translate.export import GeneratorGraph, export_generators

SIZES = {"agw_resnet50": (288, 144), "resnet50": (288, 144), "resnet18": (288, 144), "small": (64, 32),
         "tiny": (32, 16)}


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timed calls, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def inference(path: Path, fmt: str, images: torch.Tensor) -> Callable[[], object]:
    """A call that runs the exported graph at `path` on `images` as a deployment would (onnxruntime's CPU provider,
    torch.export.load, or torch.jit.load)."""
    if fmt == "pt2":
        program = torch.export.load(str(path)).module()
        return lambda: program(images)
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {"images": images.numpy()}
        return lambda: session.run(None, feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        loaded = torch.jit.load(str(path))
    return lambda: loaded(images)


def measure(name: str, module: torch.nn.Module, export: Callable[[str, Path], Path], images: torch.Tensor,
            repeats: int, out: Path) -> None:
    """Print export time, max |graph - PyTorch| on `images` and images/s of each format beside PyTorch eager."""
    with torch.no_grad():
        expected = module(images).float()
        eager = best_seconds(lambda: module(images), repeats)
    batch = images.shape[0]
    print(f"{name}: PyTorch eager {batch / eager:8.1f} images/s (batch {batch}, {torch.get_num_threads()} threads); "
          f"outputs up to {float(expected.abs().max()):.3g}")
    for fmt in ("torchscript", "pt2", "onnx"):
        try:
            if fmt == "onnx":
                require_onnx()
                import onnxruntime  # noqa: F401  (the check and the timing run the graph)
            start = time.perf_counter()
            path = export(fmt, out)
            seconds = time.perf_counter() - start
        except (ExportError, ImportError) as error:
            print(f"  {fmt:11s}  not measured: {error}")
            continue
        actual = run_exported(path, fmt, (images,), ["images"])
        with torch.no_grad():
            graph = best_seconds(inference(path, fmt, images), repeats)
        difference = float((actual - expected).abs().max())
        print(f"  {fmt:11s}  export {seconds:5.1f} s, max |graph - PyTorch| {difference:.2g} on a batch of {batch}, "
              f"{batch / graph:8.1f} images/s: {eager / graph:.2f}x PyTorch eager")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="agw_resnet50", choices=sorted(SIZES), help="ReID network")
    parser.add_argument("--batch", type=int, default=8, help="images per inference call")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (the best counts)")
    parser.add_argument("--no-normalise", dest="normalise", action="store_false",
                        help="export the raw BN-neck feature instead of the L2-normalised one")
    parser.add_argument("--skip-translator", action="store_true", help="measure the ReID network only")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench_export_"))

    torch.manual_seed(0)
    model = build_model(args.arch).eval()
    with torch.no_grad():  # BN statistics away from identity, as a trained model's
        for layer in model.modules():
            if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                layer.running_mean.normal_(0, 0.2)
                layer.running_var.uniform_(0.5, 2.0)
    height, width = SIZES[args.arch]
    config = ModelConfig(arch=args.arch, height=height, width=width)
    images = torch.randn(args.batch, 3, height, width, generator=torch.Generator().manual_seed(1))

    def export_reid(fmt: str, folder: Path) -> Path:
        return export_reid_model(model, config, folder / f"reid_vis{SUFFIXES[fmt]}", fmt=fmt, modality="vis",
                                 normalise=args.normalise)[0]

    feature = "L2-normalised" if args.normalise else "raw BN-neck"
    measure(f"{args.arch} {height}x{width}, visible stem, {feature} features",
            embedding_module(model, "vis", normalise=args.normalise).eval(), export_reid, images, args.repeats, out)
    if args.skip_translator:
        return

    torch.manual_seed(0)
    translator = load_config(TranslatorConfig, None, ["model.ngf=64", "model.ndf=64", "model.n_blocks=9",
                                                      "image.crop_height=256", "image.crop_width=128"])
    nets = build_nets(translator.model, translator.image.ir_channels)
    translator_images = torch.rand(args.batch, 3, 256, 128, generator=torch.Generator().manual_seed(2)) * 2 - 1

    def export_generator(fmt: str, folder: Path) -> Path:
        return export_generators(nets, translator, folder, fmt=fmt, direction="vis2ir")[0]

    measure("translator vis2ir (ngf 64, 9 blocks) 256x128, outputs in [-1, 1]",
            GeneratorGraph(nets.g_vis2ir).eval(), export_generator,
            translator_images, args.repeats, out)


if __name__ == "__main__":
    main()
