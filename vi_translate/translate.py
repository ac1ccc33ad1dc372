"""`vi-translate translate`: write a translated copy of a dataset (your own footage, ROOT/vis/... and ROOT/ir/...,
as `--dataset folder`), or of any folder of images of one modality (`--dataset folder --modality vis|ir`).

Every visible image gets its vis2ir view and every infrared image its ir2vis view, at the same
relative path under OUT as PNG, at the source image's own size: the generator runs at the resolution
it was trained at (the person scale it learnt) and the result is resized back. Images are decoded in
DataLoader workers, translated in batches (bf16 on CUDA) and encoded by writer threads; each output is
written to a temporary file and renamed, then recorded in OUT/manifest.jsonl, so a killed run leaves no
half-written image and a rerun translates only what is missing (a manifest line torn by the kill is cut off
and its image translated again). A corrupt input is recorded as failed and the rest goes on.

Each entry records its source's size and mtime, and translation.json the dataset root: a rerun refuses an
OUT made from another root or holding translations of source images changed since, naming them;
`overwrite` translates those again (see reid.data.translated).
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from reid.data import Record, read_image, relative_path, write_image_atomic
from reid.files import file_sha256
from reid.data.translated import (DIRECTION_OF, DONE, FAILED, MANIFEST_NAME, SUMMARY_NAME, ManifestEntry,
                                  append_manifest, output_relpath, read_manifest, root_mismatch, source_change,
                                  source_stamp, stale_error, warn_unchecked)
from reid.runtime import autocast, progress

from .checkpoint import load_translator
from .data import image_mode, resize_for_model, to_image, to_model_range

logger = logging.getLogger(__name__)

DIRECTIONS = ("vis2ir", "ir2vis", "both")
MAX_PENDING_WRITES = 64  # translated images waiting for a writer thread


@dataclass
class TranslationSummary:
    """Counts of one run of the job (and of the whole OUT folder afterwards)."""

    translated: int = 0
    failed: int = 0
    skipped: int = 0  # already done by an earlier run
    failures: list[str] = field(default_factory=list)
    images_per_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0


def translate_records(checkpoint: str | os.PathLike, records: list[Record], dataset_root: str | os.PathLike,
                      out_dir: str | os.PathLike, *, direction: str = "both", device: torch.device,
                      batch_size: int = 16, workers: int = 2, overwrite: bool = False,
                      dataset: str = "") -> TranslationSummary:
    """Translate `records` (images under `dataset_root`) into `out_dir`; see the module docstring.

    direction: "vis2ir" (visible images only), "ir2vis" (infrared only) or "both".
    overwrite: allow an OUT written with another checkpoint or from another dataset root (its manifest is
    started anew), and translate again the images whose source changed since (else StaleTranslationError).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    out, root = Path(out_dir).resolve(), Path(dataset_root).resolve()
    if out == root or out.is_relative_to(root):
        raise ValueError(f"refusing to write translations into the dataset itself: {out} is inside {root}")
    digest = file_sha256(checkpoint)
    _claim_output_folder(out, digest, root, overwrite)
    wanted = [r for r in records if direction == "both" or DIRECTION_OF[r.modality] == direction]
    done = _done_sources(out, wanted, root, overwrite)
    nets, config = load_translator(checkpoint, device)
    todo = [r for r in wanted if relative_path(r.path, root) not in done]
    summary = TranslationSummary(skipped=len(wanted) - len(todo))
    _write_summary(out, checkpoint, digest, root, config, direction, dataset, summary, complete=False)
    start = time.perf_counter()
    generators = {"vis": nets.g_vis2ir, "ir": nets.g_ir2vis}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as writers:
        for modality in ("vis", "ir"):
            group = [r for r in todo if r.modality == modality]
            if group:
                _translate_group(group, generators[modality], modality, config, root, out, device, batch_size,
                                 workers, writers, summary)
    summary.images_per_s = summary.translated / max(time.perf_counter() - start, 1e-9)
    _write_summary(out, checkpoint, digest, root, config, direction, dataset, summary, complete=summary.ok)
    return summary


def _done_sources(out: Path, records: list[Record], root: Path, overwrite: bool) -> set[str]:
    """Relative paths of the `records` already translated into `out` from the image now on disk. A source
    changed since is a StaleTranslationError naming it, or (with `overwrite`) left to be translated again."""
    manifest = read_manifest(out)
    done, changed = set(), []
    for record in records:
        source = relative_path(record.path, root)
        entry = manifest.get(source)
        if entry is None or entry.status != DONE or not (out / entry.output).is_file():
            continue
        change = source_change(entry, record.path)
        if change is None:
            done.add(source)
        else:
            changed.append(change)
    warn_unchecked((manifest[source] for source in done), out)
    if changed and not overwrite:
        raise stale_error(changed, f"refusing to keep its translation in {out}: pass --overwrite to translate "
                                   "the changed images again")
    if changed:
        logger.warning("%d source images changed since they were translated; translating them again", len(changed))
    return done


class _SourceImages(Dataset):
    """records[i] -> (i, image at the trained resolution [C, H, W] in [-1, 1], original (w, h), the file's
    (size, mtime_ns) taken before reading it), or (i, None, error message, None) for an unreadable file."""

    def __init__(self, records: list[Record], mode: str, image_config) -> None:
        self.records, self.mode, self.image_config = records, mode, image_config

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        path = self.records[index].path
        try:
            stamp = source_stamp(path)
            image = read_image(path, self.mode)
        except OSError as error:  # ImageReadError, or a file gone before it could be stat-ed
            return index, None, str(error), None
        return index, to_model_range(resize_for_model(image, self.image_config)), image.size, stamp


def _collate(items):
    """Keep readable images as one batch tensor; pass failures through."""
    good = [item for item in items if item[1] is not None]
    bad = [(index, message) for index, image, message, _ in items if image is None]
    batch = torch.stack([item[1] for item in good]) if good else None
    return [item[0] for item in good], batch, [item[2:] for item in good], bad


def _translate_group(records, generator, modality, config, root, out, device, batch_size, workers, writers,
                     summary) -> None:
    """Translate one modality's records with its generator, writing through the writer threads."""
    loader = DataLoader(_SourceImages(records, image_mode(modality, config.image.ir_channels), config.image),
                        batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        pin_memory=device.type == "cuda")
    pending: list[Future] = []
    bar = progress(total=len(records), desc=f"translate {DIRECTION_OF[modality]}", unit="img")
    for indices, batch, shapes_and_stamps, failures in loader:
        entries = [ManifestEntry(relative_path(records[i].path, root), "", DIRECTION_OF[modality], FAILED, message)
                   for i, message in failures]
        if entries:
            append_manifest(out, entries)
            summary.failed += len(entries)
            summary.failures += [f"{e.source}: {e.error}" for e in entries]
        if batch is not None:
            with torch.no_grad(), autocast(device):
                translated = generator(batch.to(device, non_blocking=True)).float().cpu()
            for index, image, (size, stamp) in zip(indices, translated, shapes_and_stamps):
                source = relative_path(records[index].path, root)
                pending.append(writers.submit(_write_one, image, size, stamp, out, source, DIRECTION_OF[modality]))
        pending = _drain(pending, out, summary, bar, block=len(pending) > MAX_PENDING_WRITES)
        bar.update(len(failures))
    _drain(pending, out, summary, bar, block=True)
    bar.close()


def _write_one(image: torch.Tensor, size: tuple[int, int], stamp: tuple[int, int], out: Path, source: str,
               direction: str) -> ManifestEntry:
    """Encode one translated image at the source size [w, h] and write it atomically (writer thread); its entry
    records the source's (size in bytes, mtime_ns) `stamp`."""
    output = output_relpath(source)
    write_image_atomic(to_image(image).resize(size, Image.BICUBIC), out / output)
    return ManifestEntry(source, output, direction, DONE, source_size=stamp[0], source_mtime_ns=stamp[1])


def _drain(pending: list[Future], out: Path, summary: TranslationSummary, bar, *, block: bool) -> list[Future]:
    """Record the finished writes in the manifest (all of them, waiting, when `block`); return the rest."""
    finished = pending if block else [future for future in pending if future.done()]
    if finished:
        entries = [future.result() for future in finished]
        append_manifest(out, entries)
        summary.translated += len(entries)
        bar.update(len(entries))
    return [future for future in pending if future not in finished]


def _claim_output_folder(out: Path, digest: str, root: Path, overwrite: bool) -> None:
    """Create OUT, or check it holds translations of the same checkpoint and dataset root; remove stray temp
    files."""
    summary_path = out / SUMMARY_NAME
    if summary_path.is_file():
        earlier = json.loads(summary_path.read_text())
        problem = _other_translations(earlier, digest, root, summary_path)
        if problem:
            if not overwrite:
                raise ValueError(f"{problem}; refusing to mix them: choose another --out, or pass --overwrite to "
                                 "translate everything again")
            (out / MANIFEST_NAME).unlink(missing_ok=True)
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty and holds no {SUMMARY_NAME}: refusing to write into it "
                         "(choose an empty or new folder, or pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    for stray in out.rglob(".*.tmp"):
        stray.unlink()


def _other_translations(earlier: dict, digest: str, root: Path, summary_path: Path) -> str | None:
    """Why an OUT's translation.json (`earlier`) describes translations this run must not add to: another
    checkpoint, or another dataset root; None when it may."""
    recorded = earlier.get("checkpoint_sha256") or ""
    if recorded != digest:
        return (f"{summary_path.parent} holds translations made with another checkpoint (sha256 {recorded[:12]}..., "
                f"this one is {digest[:12]}...)")
    return root_mismatch(earlier, root, summary_path)


def _write_summary(out: Path, checkpoint, digest: str, root: Path, config, direction: str, dataset: str,
                   summary: TranslationSummary, complete: bool) -> None:
    manifest = read_manifest(out)
    data = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": digest, "dataset": dataset,
            "dataset_root": str(root), "direction": direction, "complete": complete,
            "image": asdict(config.image), "model": asdict(config.model),
            "counts": {"done": sum(e.status == DONE for e in manifest.values()),
                       "failed": sum(e.status == FAILED for e in manifest.values()),
                       "this_run": {"translated": summary.translated, "failed": summary.failed,
                                    "skipped": summary.skipped}}}
    tmp = out / f".{SUMMARY_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, out / SUMMARY_NAME)


# ---------------------------------------------------------------------------------------------- the command


def add_parser(subparsers) -> None:
    import argparse

    from reid.data import dataset_names

    parser = subparsers.add_parser(
        "translate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="write a translated copy of a dataset, of your own footage or of a folder of images",
        description="Translate every visible image to infrared (vis2ir) and every infrared image to visible "
                    "(ir2vis), writing OUT/<same relative path>.png at the source image's own size, plus "
                    "OUT/manifest.jsonl and OUT/translation.json. Rerunning resumes; corrupt inputs are recorded "
                    "as failed and make the exit status non-zero. --dataset folder: your own unlabelled footage, "
                    "ROOT/vis/... and ROOT/ir/... (any nesting), both modalities, written to OUT/vis/... and "
                    "OUT/ir/... (a `vireid train translated=OUT` with data.name=folder pairs them); with --modality, "
                    "any folder of images of that one modality instead.")
    parser.add_argument("--checkpoint", required=True, help="translator checkpoint (vi-translate train)")
    parser.add_argument("--dataset", required=True, choices=sorted({*dataset_names(), "folder"}),
                        help="dataset layout under --root; 'folder': your own footage, ROOT/vis/... and ROOT/ir/... "
                             "(or, with --modality, any folder of images of one modality)")
    parser.add_argument("--root", required=True,
                        help="dataset root: with --dataset folder the footage's root holding vis/ and ir/, or with "
                             "--modality the folder of images")
    parser.add_argument("--out", required=True, help="output folder (not inside --root)")
    parser.add_argument("--modality", choices=["vis", "ir"],
                        help="with --dataset folder: --root is a folder of images of this one modality (any "
                             "nesting, no vis/ and ir/ folders); without it, --root holds vis/ and ir/")
    parser.add_argument("--split", choices=["train", "all"], default="train",
                        help="training images only, or also every test image")
    parser.add_argument("--trial", type=int, default=1, help="RegDB train/test split 1..10 (ignored elsewhere)")
    parser.add_argument("--direction", choices=DIRECTIONS, default="both",
                        help="translate visible images (vis2ir), infrared images (ir2vis) or both")
    parser.add_argument("--batch-size", type=int, default=16, help="images per generator call")
    parser.add_argument("--workers", type=int, default=2, help="decoding worker processes and writer threads")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow an OUT that holds translations made with another checkpoint or from another "
                             "dataset root (translates all again), or of source images changed since (translates "
                             "those again)")
    parser.set_defaults(handler=run)


def select_records(dataset: str, root: str, split: str, modality: str | None, trial: int) -> list[Record]:
    """The images to translate: a dataset's training (and test) images; for `folder`, the footage's images of
    both modalities (ROOT/vis/... and ROOT/ir/..., `reid.data.folder`; it has no test images), or with `modality`
    every image of a folder of that one modality."""
    from reid.data import DatasetLayoutError, load_dataset

    from .sample import list_inputs

    if dataset == "folder" and modality is not None:
        return _one_output_each([Record(str(path), -1, -1, modality) for path in list_inputs(root, limit=None)], root)
    if dataset == "folder":
        try:
            return _one_output_each(load_dataset("folder", root).train, root)
        except DatasetLayoutError as error:
            raise DatasetLayoutError(f"{error}; for a folder holding images of one modality only, pass --modality "
                                     f"vis or --modality ir") from None
    loaded = load_dataset(dataset, root, **({"trial": trial} if dataset == "regdb" else {}))
    return loaded.train + (loaded.test_images() if split == "all" else [])


def _one_output_each(records: list[Record], root: str) -> list[Record]:
    """`records`, or a ValueError naming two images of a folder whose translations would be the same file (e.g.
    a.jpg and a.png: both become a.png under OUT)."""
    written: dict[str, str] = {}
    for record in records:
        source = relative_path(record.path, root)
        other = written.setdefault(output_relpath(source), source)
        if other != source:
            raise ValueError(f"{Path(root) / other} and {Path(root) / source} would both be translated to "
                             f"OUT/{output_relpath(source)}: rename one of them")
    return records


def run(args) -> tuple[int, str]:
    from reid.runtime import resolve_device

    records = select_records(args.dataset, args.root, args.split, args.modality, args.trial)
    summary = translate_records(args.checkpoint, records, args.root, args.out, direction=args.direction,
                                device=resolve_device(args.device), batch_size=args.batch_size, workers=args.workers,
                                overwrite=args.overwrite, dataset=args.dataset)
    lines = [f"translated {summary.translated}, already done {summary.skipped}, failed {summary.failed} "
             f"({summary.images_per_s:.1f} images/s) -> {args.out}"]
    lines += [f"  failed: {failure}" for failure in summary.failures[:20]]
    return (0 if summary.ok else 1), "\n".join(lines)
