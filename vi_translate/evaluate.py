"""`vi-translate evaluate`: judge a trained visible <-> infrared translator, with nothing downloaded.

Three measurements, each run when its inputs are given:

- cycle reconstruction (a dataset split): vis -> ir -> vis for visible images and ir -> vis -> ir for
  infrared ones, PSNR / SSIM / L1 against the input. High values mean the two generators invert each other;
  they say nothing about whether the translations look like the other modality.
- KID (a dataset split and a feature extractor): Kernel Inception Distance between translated visible
  images (vis2ir) and real infrared images, between translated infrared images (ir2vis) and real visible
  images, and between real visible and real infrared images: the reference, how far apart the modalities
  are before translation. A useful translator brings the first two well below the reference.
- paired metrics (two folders of registered images, matched by file name): vis2ir(vis) against the
  infrared partner and ir2vis(ir) against the visible partner, PSNR / SSIM / L1.
- ground truth (a dataset root holding `paired/`, as the synthetic generator writes): the paired metrics on
  the pairs of the split's identities (`split_pairs`: val or test; the training ids have none), beside the
  trivial baselines each direction must beat: the visible image's ITU-R 601 luma as the infrared prediction
  (vis2ir) and the infrared image's grey (its channel mean) in three channels as the visible one (ir2vis).

Images are translated at the trained resolution (`resize_for_model`: resized straight to the crop size)
and compared there; metrics are means of per-image values (`vi_translate.metrics`). Generators run under
`torch.no_grad()` and `reid.runtime.autocast` (bf16 on CUDA); metrics and features are computed in float32.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from reid.cli_support import positive_int, write_json
from reid.data import Record, read_image
from reid.data.synthetic import PAIRED_DIR
from reid.data.sysu import IMAGE_SUFFIXES, read_id_file
from reid.files import check_output_folder
from reid.runtime import autocast, progress

from . import metrics
from .data import image_mode, resize_for_model, to_model_range
from .extractors import FeatureExtractor, reid_extractor, torchvision_extractor
from .losses import match_channels
from .visualize import save_translation_grid

logger = logging.getLogger(__name__)

RESULTS_NAME = "translator_eval.json"
GRID_NAME = "grid.png"
GRID_IMAGES = 4
OTHER = {"vis": "ir", "ir": "vis"}
DIRECTION = {"vis": "vis2ir", "ir": "ir2vis"}
KID_KEYS = {"fake_ir": "vis2ir_vs_real_ir", "fake_vis": "ir2vis_vs_real_vis", "reference": "real_vis_vs_real_ir"}
PAIRED_SPLITS = ("val", "test")  # the splits whose identities have ground-truth pairs under ROOT/paired
BASELINES = {"vis2ir": "visible luma (ITU-R 601) as the infrared image",
             "ir2vis": "infrared grey (channel mean) as the visible image"}


# ---------------------------------------------------------------------------------------------- helpers


def evenly_spaced(items: Sequence, limit: Optional[int]) -> list:
    """At most `limit` items spread evenly over `items`, in order (all when limit is None or >= len):
    a deterministic sample that covers every identity of an id-sorted list, unlike its first `limit`."""
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit!r}")
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def _image_config(config):
    """The ImageConfig of a TranslatorConfig (or an ImageConfig itself)."""
    return getattr(config, "image", config)


def load_batch(paths: Sequence[str | os.PathLike], modality: str, config) -> Tensor:
    """Read images of one modality at the trained resolution -> [B, C, crop_height, crop_width] in [-1, 1]
    (C = 3 for visible, ir_channels for infrared)."""
    image_config = _image_config(config)
    mode = image_mode(modality, image_config.ir_channels)
    return torch.stack([to_model_range(resize_for_model(read_image(path, mode), image_config)) for path in paths])


def _batches(items: Sequence, batch_size: int) -> list[Sequence]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    return [items[start:start + batch_size] for start in range(0, len(items), batch_size)]


def _generate(generator: torch.nn.Module, images: Tensor, device: torch.device) -> Tensor:
    """One generator call under no_grad / autocast -> float32 in [-1, 1]."""
    with torch.no_grad(), autocast(device):
        return generator(images).float().clamp(-1.0, 1.0)


class _Scores:
    """Per-image PSNR / SSIM / L1, accumulated over batches."""

    def __init__(self) -> None:
        self.values: dict[str, list[Tensor]] = {"psnr": [], "ssim": [], "l1": []}

    def add(self, pred: Tensor, target: Tensor) -> None:
        pred, target = pred.float(), target.float()
        self.values["psnr"].append(metrics.psnr(pred, target).cpu())
        self.values["ssim"].append(metrics.ssim(pred, target).cpu())
        self.values["l1"].append(metrics.l1(pred, target).cpu())

    def summary(self) -> dict:
        """{"psnr", "ssim", "l1": means of per-image values, "images": count}."""
        count = sum(len(v) for v in self.values["psnr"])
        means = {key: float(torch.cat(values).mean()) if values else float("nan") for key, values in self.values.items()}
        return means | {"images": count}


def _split_by_modality(records: Sequence[Record], limit: Optional[int]) -> dict[str, list[Record]]:
    by_modality = {modality: evenly_spaced([r for r in records if r.modality == modality], limit)
                   for modality in ("vis", "ir")}
    missing = [modality for modality, chosen in by_modality.items() if not chosen]
    if missing:
        raise ValueError(f"the records hold no {' and no '.join(missing)} images ({len(records)} records): "
                         "translator evaluation needs both modalities")
    return by_modality


# ---------------------------------------------------------------------------------------------- dataset split


def evaluate_dataset(nets, config, records: Sequence[Record], device: torch.device | str, *,
                     limit: Optional[int] = 500, extractor: Optional[FeatureExtractor] = None, cycle: bool = True,
                     subset_size: int = 100, num_subsets: int = 100, batch_size: int = 16, seed: int = 0,
                     grid_images: int = 0) -> tuple[dict, dict[str, Tensor]]:
    """Cycle metrics and/or KID on a dataset split, in one pass over its images.

    records: images of both modalities; up to `limit` per modality are used, evenly spaced over the list.
    Each image is translated once (and reconstructed when `cycle`); with an `extractor`, the features of
    the real image and of its translation are kept for KID.
    Returns (results, samples): results {"cycle": {"vis": {psnr, ssim, l1, images}, "ir": {...}}} when
    `cycle`, and {"kid": {"vis2ir_vs_real_ir" | "ir2vis_vs_real_vis" | "real_vis_vs_real_ir": {mean, std,
    images: [n_a, n_b]}, subset_size, num_subsets, seed}} with an extractor; samples: the first
    `grid_images` of each modality: {"vis", "fake_ir", "rec_vis", "ir", "fake_vis", "rec_ir"} [n, C, H, W].
    """
    device = torch.device(device)
    chosen = _split_by_modality(records, limit)
    results: dict = {}
    scores = {modality: _Scores() for modality in chosen}
    features: dict[str, list[Tensor]] = {"vis": [], "ir": [], "fake_vis": [], "fake_ir": []}
    samples: dict[str, list[Tensor]] = {key: [] for key in ("vis", "fake_ir", "rec_vis", "ir", "fake_vis", "rec_ir")}
    for modality, modality_records in chosen.items():
        forward = nets.g_vis2ir if modality == "vis" else nets.g_ir2vis
        backward = nets.g_ir2vis if modality == "vis" else nets.g_vis2ir
        other = OTHER[modality]
        for batch in progress(_batches(modality_records, batch_size), desc=f"evaluate {modality}", unit="batch"):
            real = load_batch([r.path for r in batch], modality, config).to(device)
            fake = _generate(forward, real, device)
            rec = _generate(backward, fake, device) if cycle or grid_images else None
            if cycle:
                scores[modality].add(rec, real)
            if extractor is not None:
                features[modality].append(extractor(real, modality))
                features[f"fake_{other}"].append(extractor(fake, other))
            have = sum(len(x) for x in samples[modality])
            if have < grid_images:
                take = grid_images - have
                samples[modality].append(real[:take].cpu())
                samples[f"fake_{other}"].append(fake[:take].cpu())
                samples[f"rec_{modality}"].append(rec[:take].cpu())
    if cycle:
        results["cycle"] = {modality: scores[modality].summary() for modality in chosen}
    if extractor is not None:
        stacked = {key: torch.cat(rows) for key, rows in features.items()}
        pairs = {"fake_ir": ("fake_ir", "ir"), "fake_vis": ("fake_vis", "vis"), "reference": ("vis", "ir")}
        kid = {}
        for name, (a, b) in pairs.items():
            mean, std = metrics.kid(stacked[a], stacked[b], subset_size, num_subsets, seed)
            kid[KID_KEYS[name]] = {"mean": mean, "std": std, "images": [len(stacked[a]), len(stacked[b])]}
        used = min(subset_size, *(len(v) for v in stacked.values()))
        results["kid"] = kid | {"extractor": getattr(extractor, "name", type(extractor).__name__),
                                "subset_size": used, "num_subsets": num_subsets, "seed": seed}
    return results, {key: torch.cat(rows) for key, rows in samples.items() if rows}


def evaluate_cycle(nets, config, records: Sequence[Record], device: torch.device | str, limit: Optional[int] = 500,
                   *, batch_size: int = 16) -> dict:
    """Cycle-reconstruction metrics per modality: {"vis": {psnr, ssim, l1, images} of vis -> ir -> vis
    against the input, "ir": {...} of ir -> vis -> ir}; up to `limit` images per modality (evenly spaced)."""
    results, _ = evaluate_dataset(nets, config, records, device, limit=limit, batch_size=batch_size)
    return results["cycle"]


def evaluate_kid(nets, config, records: Sequence[Record], extractor: FeatureExtractor, device: torch.device | str,
                 limit: Optional[int] = 500, subset_size: int = 100, num_subsets: int = 100, *,
                 batch_size: int = 16, seed: int = 0) -> dict:
    """KID (mean, std over subsets) between vis2ir translations and real infrared images
    ("vis2ir_vs_real_ir"), ir2vis translations and real visible images ("ir2vis_vs_real_vis"), and real
    visible vs real infrared images ("real_vis_vs_real_ir", the before-translation reference), from up to
    `limit` images per modality; each entry {"mean", "std", "images": [n_a, n_b]}, plus the settings."""
    results, _ = evaluate_dataset(nets, config, records, device, limit=limit, extractor=extractor, cycle=False,
                                  subset_size=subset_size, num_subsets=num_subsets, batch_size=batch_size, seed=seed)
    return results["kid"]


def split_records(dataset, split: str) -> list[Record]:
    """The images of a split: "train" = `dataset.train`; "test" = every test image (`dataset.test_images()`:
    SYSU-MM01 every image of the test ids in all six cameras, RegDB the trial's visible and thermal test
    images, LLCM every test_vis / test_nir image of the test ids), not one trial's sampled gallery.
    Sorted by path, duplicates removed."""
    if split == "train":
        records = list(dataset.train)
    elif split == "test":
        if hasattr(dataset, "test_images"):
            records = list(dataset.test_images())
        else:  # a loader without test_images(): the union of its default protocol's query and gallery
            query, gallery = dataset.test_split()
            records = query + gallery
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return sorted({r.path: r for r in records}.values(), key=lambda r: r.path)


# ---------------------------------------------------------------------------------------------- paired folders


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every image (.jpg .jpeg .png .bmp) under `folder`, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"paired folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_pairs(vis_dir: str | os.PathLike, ir_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Registered (visible, infrared) pairs: files with the same name without suffix (and the same
    sub-folder) under both folders, e.g. vis/0001.jpg and ir/0001.png; sorted by name."""
    def by_name(folder) -> dict[str, Path]:
        names: dict[str, Path] = {}
        for path in list_images(folder):
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in names:
                logger.warning("%s and %s have the same name; using the first", names[key], path)
                continue
            names[key] = path
        return names

    vis, ir = by_name(Path(vis_dir)), by_name(Path(ir_dir))
    common = sorted(vis.keys() & ir.keys())
    if not common:
        examples = lambda names: ", ".join(sorted(names)[:3]) or "none"  # noqa: E731
        raise ValueError(f"no registered pairs: none of the {len(vis)} images under {vis_dir} (e.g. {examples(vis)}) "
                         f"has a file of the same name under {ir_dir} ({len(ir)} images, e.g. {examples(ir)})")
    unmatched = len(vis) + len(ir) - 2 * len(common)
    if unmatched:
        logger.info("%d images under %s / %s have no partner of the same name and are skipped", unmatched,
                    vis_dir, ir_dir)
    return [(vis[name], ir[name]) for name in common]


def luma_prediction(vis: Tensor) -> Tensor:
    """The trivial vis2ir prediction: [B, 3, H, W] -> [B, 1, H, W], the ITU-R 601 luma of the visible image."""
    return match_channels(vis, 1)


def grey_prediction(ir: Tensor) -> Tensor:
    """The trivial ir2vis prediction: [B, C, H, W] -> [B, 3, H, W], the infrared image's grey (its channel mean)
    in three channels."""
    return ir.mean(1, keepdim=True).expand(-1, 3, -1, -1)


def evaluate_pairs(nets, config, pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
                   device: torch.device | str, limit: Optional[int] = 500, *, batch_size: int = 16,
                   grid_images: int = 0, baselines: bool = False) -> tuple[dict, dict[str, Tensor]]:
    """PSNR / SSIM / L1 of translations against registered partners: `pairs` of (visible path, infrared path),
    up to `limit` of them, evenly spaced.

    Returns (results, samples): results {"pairs": n, "vis2ir": {psnr, ssim, l1, images} of vis2ir(vis) against
    ir (compared in the infrared channels), "ir2vis": {...} of ir2vis(ir) against vis}, and with `baselines`
    "baselines": {"vis2ir": scores of `luma_prediction(vis)` against ir, "ir2vis": scores of `grey_prediction(ir)`
    against vis}; samples: the first `grid_images` pairs {"vis", "fake_ir", "ir", "fake_vis"}.
    """
    device = torch.device(device)
    pairs = evenly_spaced(pairs, limit)
    scores = {"vis2ir": _Scores(), "ir2vis": _Scores()}
    trivial = {"vis2ir": _Scores(), "ir2vis": _Scores()}
    samples: dict[str, list[Tensor]] = {key: [] for key in ("vis", "fake_ir", "ir", "fake_vis")}
    for batch in progress(_batches(pairs, batch_size), desc="evaluate pairs", unit="batch"):
        vis = load_batch([v for v, _ in batch], "vis", config).to(device)
        ir = load_batch([i for _, i in batch], "ir", config).to(device)
        fake_ir, fake_vis = _generate(nets.g_vis2ir, vis, device), _generate(nets.g_ir2vis, ir, device)
        scores["vis2ir"].add(fake_ir, ir)
        scores["ir2vis"].add(fake_vis, vis)
        if baselines:
            trivial["vis2ir"].add(luma_prediction(vis), ir)
            trivial["ir2vis"].add(grey_prediction(ir), vis)
        take = grid_images - sum(len(x) for x in samples["vis"])
        if take > 0:
            for key, images in (("vis", vis), ("fake_ir", fake_ir), ("ir", ir), ("fake_vis", fake_vis)):
                samples[key].append(images[:take].cpu())
    results = {"pairs": len(pairs), "vis2ir": scores["vis2ir"].summary(), "ir2vis": scores["ir2vis"].summary()}
    if baselines:
        results["baselines"] = {direction: {"prediction": BASELINES[direction], **trivial[direction].summary()}
                                for direction in ("vis2ir", "ir2vis")}
    return results, {key: torch.cat(rows) for key, rows in samples.items() if rows}


def evaluate_paired(nets, config, vis_dir: str | os.PathLike, ir_dir: str | os.PathLike, device: torch.device | str,
                    limit: Optional[int] = 500, *, batch_size: int = 16,
                    grid_images: int = 0) -> tuple[dict, dict[str, Tensor]]:
    """PSNR / SSIM / L1 of translations against registered partners (up to `limit` pairs, evenly spaced).

    Returns (results, samples): results {"pairs": n, "vis_dir", "ir_dir", "vis2ir": {psnr, ssim, l1, images}
    of vis2ir(vis) against ir (compared in the infrared channels), "ir2vis": {...} of ir2vis(ir) against
    vis}; samples: the first `grid_images` pairs {"vis", "fake_ir", "ir", "fake_vis"}.
    Raises ValueError naming both folders when no file names match.
    """
    part, samples = evaluate_pairs(nets, config, find_pairs(vis_dir, ir_dir), device, limit, batch_size=batch_size,
                                   grid_images=grid_images)
    return {"pairs": part.pop("pairs"), "vis_dir": str(vis_dir), "ir_dir": str(ir_dir), **part}, samples


# ---------------------------------------------------------------------------------------------- ground-truth pairs


def split_pairs(root: str | os.PathLike, split: str) -> list[tuple[Path, Path]]:
    """The ground-truth (visible, infrared) pairs of the identities of a split of a dataset root with `paired/`.

    `ROOT/paired/{vis,ir}/cam<c>_<pid:04d>_<n:04d>.jpg` (the synthetic generator: each image of a val or test id
    and its rendered other modality), matched by name as `find_pairs`, kept when pid is listed in
    `ROOT/exp/<split>_id.txt`. split: "val" or "test"; "train" gives [] (the training ids never have pairs).
    Sorted by name.
    """
    if split == "train":
        return []
    if split not in PAIRED_SPLITS:
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    root = Path(root)
    ids = set(read_id_file(root / "exp" / f"{split}_id.txt"))
    if not ids:
        return []
    return [(vis, ir) for vis, ir in find_pairs(root / PAIRED_DIR / "vis", root / PAIRED_DIR / "ir")
            if _pair_pid(vis) in ids]


def _pair_pid(path: Path) -> Optional[int]:
    """The pid of a pair file named cam<c>_<pid>_<n>.<suffix>; None for another name."""
    parts = path.stem.split("_")
    return int(parts[1]) if len(parts) == 3 and parts[0].startswith("cam") and parts[1].isdecimal() else None


def evaluate_ground_truth(nets, config, root: str | os.PathLike, split: str, device: torch.device | str,
                          limit: Optional[int] = 500, *, batch_size: int = 16) -> dict:
    """The paired metrics and their trivial baselines (`evaluate_pairs` with baselines) on `split_pairs(root,
    split)`: {"split", "pairs_found", "pairs", "vis2ir", "ir2vis", "baselines"}, or {"split", "pairs_found": 0,
    "pairs": 0, "note"} when the split has no pairs (the train split never has)."""
    pairs = split_pairs(root, split)
    if not pairs:
        why = "the generator renders pairs of the val and test ids only" if split == "train" else \
            f"{Path(root) / PAIRED_DIR} holds no pair of the {split} ids"
        return {"split": split, "pairs_found": 0, "pairs": 0, "note": f"no ground-truth pairs for the {split} "
                                                                      f"split: {why}"}
    part, _ = evaluate_pairs(nets, config, pairs, device, limit, batch_size=batch_size, baselines=True)
    return {"split": split, "pairs_found": len(pairs), **part}


# ---------------------------------------------------------------------------------------------- the command


def build_extractor(spec: str, weights: str, device: torch.device) -> FeatureExtractor:
    """`--extractor` / `--extractor-weights` -> a feature extractor.

    spec: "torchvision:ARCH" or "reid:CHECKPOINT"; weights (torchvision only): "imagenet", "random" or a path.
    """
    kind, _, value = spec.partition(":")
    if kind == "torchvision" and value:
        try:
            return torchvision_extractor(value, None if weights == "random" else weights, device)
        except FileNotFoundError as error:
            if weights != "imagenet":
                raise
            raise FileNotFoundError(f"--extractor {spec}: {error}") from error
    if kind == "reid" and value:
        return reid_extractor(value, device)
    raise ValueError(f"--extractor must be torchvision:ARCH (e.g. torchvision:resnet50) or reid:CHECKPOINT, "
                     f"got {spec!r}")


def write_results(path: str | os.PathLike, results: dict) -> Path:
    """Write `results` as strict JSON atomically (non-finite numbers, e.g. the PSNR of identical images, as null)."""
    return write_json(path, results)


def format_table(results: dict) -> str:
    """The results as a plain-text table."""
    lines = [f"{'':34s} {'PSNR dB':>8s} {'SSIM':>7s} {'L1':>7s} {'images':>7s}"]

    def row(label: str, values: dict) -> None:
        lines.append(f"{label:34s} {values['psnr']:8.2f} {values['ssim']:7.4f} {values['l1']:7.4f} "
                     f"{values['images']:7d}")

    if "cycle" in results:
        row("cycle vis -> ir -> vis", results["cycle"]["vis"])
        row("cycle ir -> vis -> ir", results["cycle"]["ir"])
    if "paired" in results:
        row("paired vis2ir vs real ir", results["paired"]["vis2ir"])
        row("paired ir2vis vs real vis", results["paired"]["ir2vis"])
    if "ground_truth" in results:
        truth = results["ground_truth"]
        if truth["pairs"]:
            lines.append(f"ground truth: {truth['pairs']} pairs of the {truth['split']} ids")
            row("  vis2ir vs true ir", truth["vis2ir"])
            row("    baseline: visible luma", truth["baselines"]["vis2ir"])
            row("  ir2vis vs true vis", truth["ir2vis"])
            row("    baseline: infrared grey", truth["baselines"]["ir2vis"])
        else:
            lines.append(truth["note"])
    if "kid" in results:
        kid = results["kid"]
        lines.append(f"KID ({kid['extractor']}, {kid['num_subsets']} subsets of {kid['subset_size']}) "
                     f"{'mean':>10s} {'std':>10s} {'images':>11s}")
        for key, label in ((KID_KEYS["fake_ir"], "vis2ir vs real ir"), (KID_KEYS["fake_vis"], "ir2vis vs real vis"),
                           (KID_KEYS["reference"], "real vis vs real ir (reference)")):
            value = kid[key]
            lines.append(f"  {label:32s} {value['mean']:10.5f} {value['std']:10.5f} "
                         f"{value['images'][0]:>5d} / {value['images'][1]:<5d}")
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `evaluate` on an argparse subparsers object; its handler is `run`."""
    from reid.data import dataset_names

    parser = subparsers.add_parser(
        "evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="judge a trained translator: cycle reconstruction, KID, paired PSNR/SSIM/L1",
        description="Judge a translator checkpoint without downloading anything. With --dataset/--root: "
                    "cycle-reconstruction PSNR/SSIM/L1 per modality (vis->ir->vis, ir->vis->ir) and KID "
                    "(Kernel Inception Distance, lower is closer) of vis2ir translations vs real infrared, of "
                    "ir2vis translations vs real visible, and of real visible vs real infrared as the reference "
                    "distance before translation. With --paired-vis/--paired-ir: PSNR/SSIM/L1 of each "
                    "translation against its registered partner. When the dataset root holds paired/ (the "
                    "synthetic generator's ground truth), also PSNR/SSIM/L1 of each translation against the true "
                    "other modality of the --split's val or test images, beside the trivial baselines (visible luma "
                    "as infrared, infrared grey as visible). Images are translated and compared at the "
                    "trained resolution. Writes OUT/translator_eval.json (inf/nan as null), OUT/grid.png and "
                    "prints a table.")
    parser.add_argument("--checkpoint", required=True, help="translator checkpoint (vi-translate train)")
    parser.add_argument("--dataset", choices=dataset_names(),
                        help="dataset layout under --root; enables cycle-reconstruction metrics and KID")
    parser.add_argument("--root", help="dataset root folder (with --dataset)")
    parser.add_argument("--split", choices=["train", "val", "test"], default=None,
                        help="dataset images to use: train = the training images; test = every test image (SYSU-MM01 "
                             "and synthetic: all six cameras of the test ids; RegDB: the --trial's visible and "
                             "thermal test images; LLCM: every test_vis / test_nir image); val = all six cameras of "
                             "the val ids (SYSU-MM01 and synthetic). Ground-truth pairs (ROOT/paired) exist for the "
                             "val and test ids only. Default: test, and train for --dataset folder (own footage has "
                             "no test split)")
    parser.add_argument("--trial", type=int, default=1, help="RegDB train/test split 1..10 (ignored elsewhere)")
    parser.add_argument("--paired-vis", metavar="DIR",
                        help="folder of visible images registered with --paired-ir (partners share a file name, "
                             "suffix aside); enables paired PSNR/SSIM/L1")
    parser.add_argument("--paired-ir", metavar="DIR", help="folder of the infrared partners of --paired-vis")
    parser.add_argument("--extractor", default="torchvision:resnet50", metavar="SPEC",
                        help="KID features: torchvision:ARCH (a torchvision classifier without its last layer, e.g. "
                             "resnet50, resnet18, inception_v3) or reid:CHECKPOINT (BN-neck features of a ReID "
                             "checkpoint, infrared images through its infrared stem)")
    parser.add_argument("--extractor-weights", default="imagenet", metavar="WEIGHTS",
                        help="torchvision extractor weights: imagenet (torchvision's file in the torch hub cache, "
                             "TORCH_HOME/hub/checkpoints; never downloaded, an error names the paths tried), a path "
                             "to a state dict, or random (untrained: KID then compares only low-level image "
                             "statistics); ignored for reid:")
    parser.add_argument("--max-images", type=positive_int, default=500,
                        help="at most this many images per modality (and pairs), evenly spaced over the split")
    parser.add_argument("--kid-subset-size", type=positive_int, default=100,
                        help="images per KID subset (capped at the smaller set's size; at least 2 needed)")
    parser.add_argument("--kid-subsets", type=positive_int, default=100,
                        help="random subsets KID averages over (its std is over these subsets)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="images per generator / extractor call")
    parser.add_argument("--out", required=True, help=f"output folder for {RESULTS_NAME} and {GRID_NAME}")
    parser.set_defaults(handler=run)
    return parser


def _check_inputs(args) -> None:
    if args.dataset is None and args.paired_vis is None and args.paired_ir is None:
        raise ValueError("nothing to evaluate: give --dataset NAME --root DIR (cycle reconstruction and KID) "
                         "and/or --paired-vis DIR --paired-ir DIR (paired PSNR/SSIM/L1)")
    if args.dataset is not None and args.root is None:
        raise ValueError(f"--dataset {args.dataset} needs --root (the dataset folder)")
    if args.root is not None and args.dataset is None:
        raise ValueError(f"--root {args.root} needs --dataset (its layout: sysu, regdb, llcm or synthetic)")
    if (args.paired_vis is None) != (args.paired_ir is None):
        raise ValueError("--paired-vis and --paired-ir go together (two folders of registered images)")


def _open_split(args):
    """(dataset, split) of `--dataset/--root/--split`: for split "val" the SYSU-MM01-layout dataset is opened with
    its val ids held out (`evaluate_on="val"`), so its test images are those of the val ids."""
    from reid.data import load_dataset
    from reid.data.registry import dataset_class
    from reid.data.sysu import SYSUMM01

    options = {"trial": args.trial} if args.dataset == "regdb" else {}
    if args.split == "val":
        if dataset_class(args.dataset) is not SYSUMM01:
            raise ValueError(f"--split val: only SYSU-MM01-layout datasets (sysu, synthetic) have val ids, "
                             f"not {args.dataset}")
        options["evaluate_on"] = "val"
    dataset = load_dataset(args.dataset, args.root, **options)
    split = args.split or ("test" if dataset.has_identities else "train")
    if split == "test" and not dataset.has_identities:
        raise ValueError(f"--dataset {args.dataset} has no test split (no identities): use --split train")
    return dataset, split


def run(args) -> tuple[int, str]:
    """The `evaluate` command: see `add_parser`."""
    from reid.runtime import resolve_device

    from .checkpoint import load_translator

    _check_inputs(args)
    out = check_output_folder(args.out, what="--out")  # before minutes of work, not after
    device = resolve_device(args.device)
    started = time.perf_counter()
    extractor = build_extractor(args.extractor, args.extractor_weights, device) if args.dataset else None
    nets, config = load_translator(args.checkpoint, device)
    results: dict = {"checkpoint": str(args.checkpoint), "device": str(device),
                     "image": {"height": config.image.crop_height, "width": config.image.crop_width,
                               "ir_channels": config.image.ir_channels}}
    grid: Optional[list[Tensor]] = None
    if args.dataset:
        dataset, split = _open_split(args)
        records = split_records(dataset, "test" if split == "val" else split)
        found = {m: sum(r.modality == m for r in records) for m in ("vis", "ir")}
        logger.info("%s %s split: %d visible and %d infrared images (using up to %d of each)", args.dataset,
                    split, found["vis"], found["ir"], args.max_images)
        part, samples = evaluate_dataset(nets, config, records, device, limit=args.max_images, extractor=extractor,
                                         subset_size=args.kid_subset_size, num_subsets=args.kid_subsets,
                                         batch_size=args.batch_size, grid_images=GRID_IMAGES)
        results["dataset"] = {"name": args.dataset, "root": str(args.root), "split": split,
                              **({"trial": args.trial} if args.dataset == "regdb" else {}), "images_found": found}
        results["extractor"] = {"name": extractor.name, "weights": getattr(extractor, "weights", None),
                                "feature_dim": extractor.feature_dim}
        results |= part
        if (Path(args.root) / PAIRED_DIR).is_dir():
            results["ground_truth"] = evaluate_ground_truth(nets, config, args.root, split, device, args.max_images,
                                                            batch_size=args.batch_size)
        count = min(len(samples["vis"]), len(samples["ir"]))
        grid = [samples[key][:count] for key in ("vis", "fake_ir", "rec_vis", "ir", "fake_vis", "rec_ir")]
    if args.paired_vis:
        part, samples = evaluate_paired(nets, config, args.paired_vis, args.paired_ir, device, args.max_images,
                                        batch_size=args.batch_size, grid_images=GRID_IMAGES)
        results["paired"] = part
        if grid is None:
            grid = [samples[key] for key in ("vis", "fake_ir", "ir", "fake_vis")]
    results["seconds"] = round(time.perf_counter() - started, 2)
    write_results(out / RESULTS_NAME, results)
    save_translation_grid(out / GRID_NAME, grid)
    return 0, f"{format_table(results)}\nwrote {out / RESULTS_NAME} and {out / GRID_NAME}"
