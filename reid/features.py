"""Features: extraction with a model (`extract_features`) and feature sets aligned with the records
they describe, saved portably.

A features file stores image paths relative to the dataset root, so a file written on one machine
is looked up against the same dataset on another. It is written and read like a checkpoint
(atomic, `weights_only=True`, kind "features").
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import runtime
from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import CheckpointError, load_checkpoint, require_state, save_checkpoint
from .data import Record, read_image, relative_path
from .data.io import raise_image_errors
from .data.preload import PreloadedImages
from .data.transforms import build_test_transform

logger = logging.getLogger(__name__)

FEATURES_KIND = "features"


@dataclass
class FeatureSet:
    """features: [N, D] float32, row i describing records[i]."""

    records: list[Record]
    features: torch.Tensor

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[0] != len(self.records):
            raise ValueError(f"features must be [N, D] with N = {len(self.records)} records, "
                             f"got shape {tuple(self.features.shape)}")

    def save(self, path: str | os.PathLike, root: str | os.PathLike) -> Path:
        """Write to `path`, image paths stored relative to the dataset `root`."""
        state = {"paths": [relative_path(record.path, root) for record in self.records],
                 "pids": torch.tensor([record.pid for record in self.records], dtype=torch.int64),
                 "camids": torch.tensor([record.camid for record in self.records], dtype=torch.int64),
                 "modalities": [record.modality for record in self.records],
                 "features": self.features.detach().float().cpu().contiguous()}
        return save_checkpoint(path, kind=FEATURES_KIND, state=state)

    @classmethod
    def load(cls, path: str | os.PathLike, root: str | os.PathLike = "") -> FeatureSet:
        """Read a features file; record paths are joined to the dataset `root` (kept relative when "")."""
        checkpoint = load_checkpoint(path, kind=FEATURES_KIND)
        paths, features, pids, camids, modalities = (
            require_state(checkpoint, key, path) for key in ("paths", "features", "pids", "camids", "modalities"))
        pids, camids = pids.tolist(), camids.tolist()
        if not (len(paths) == len(pids) == len(camids) == len(modalities) == features.shape[0]):
            raise CheckpointError(f"{path}: paths, ids, cameras, modalities and features differ in length")
        records = [Record(str(Path(root) / p), pid, camid, modality)
                   for p, pid, camid, modality in zip(paths, pids, camids, modalities)]
        return cls(records, features.float())

    def lookup(self, records: list[Record]) -> torch.Tensor:
        """Rows for `records` (matched by path): [len(records), D]; KeyError naming the first missing image."""
        row_of = {os.path.normpath(record.path): row for row, record in enumerate(self.records)}
        rows = []
        for record in records:
            row = row_of.get(os.path.normpath(record.path))
            if row is None:
                raise KeyError(f"no feature for {record.path} in this feature set ({len(self.records)} images)")
            rows.append(row)
        return self.features[torch.as_tensor(rows, dtype=torch.int64)]


def is_features_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a features file (`FeatureSet.save`: a checkpoint of kind "features"), told from its header
    without reading its tensors (memory-mapped); False for any other file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - whatever torch raises, the file is not one of ours
        return False
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT \
        and payload.get("kind") == FEATURES_KIND


# ------------------------------------------------------------------------------------ extraction


class RecordImages(Dataset):
    """records[i] -> (image [3, H, W] after `transform`, is_ir bool). Raises ImageReadError naming bad files.
    preloaded: serve the images from memory (the same test transform, applied once)."""

    def __init__(self, records: Sequence[Record], transform: Callable,
                 preloaded: PreloadedImages | None = None) -> None:
        self.records = records
        self.transform = transform
        self.preloaded = preloaded

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool]:
        record = self.records[index]
        if self.preloaded is not None:
            return self.preloaded.image(record.path), record.modality == "ir"
        return self.transform(read_image(record.path)), record.modality == "ir"


def embed_batch(model: nn.Module, images: torch.Tensor, is_ir: torch.Tensor, flip: bool,
                normalise: bool = True) -> torch.Tensor:
    """images [B, 3, H, W], is_ir [B] -> float32 features [B, D]: the L2-normalised network feature, with `flip`
    the mean of it and of the horizontally flipped image's (the references' rule), L2-normalised again when
    `normalise` (the test features; the references cluster the mean as it is)."""
    features = F.normalize(model(images, is_ir)["features"].float(), dim=1)
    if flip:
        features = (features + F.normalize(model(images.flip(3), is_ir)["features"].float(), dim=1)) / 2
    return F.normalize(features, dim=1) if normalise else features


def extract_features(model: nn.Module, records: Sequence[Record], device: torch.device, *, batch_size: int = 64,
                     height: int = 288, width: int = 144, flip: bool = True, normalise: bool = True,
                     bf16: bool = True, num_workers: int = 0, progress: bool = True,
                     preloaded: PreloadedImages | None = None) -> torch.Tensor:
    """Features [N, D] float32 on the CPU, row i for records[i] (see `embed_batch` for flip and normalise).

    preloaded: images already decoded and resized to (height, width) (`reid.data.preload.PreloadedImages`).

    The model is moved to `device` and run in eval mode under no_grad (channels_last on CUDA, and bf16 autocast
    there when `bf16`); its train/eval mode is restored afterwards. An unreadable image raises ImageReadError
    with the same one-line message whatever `num_workers`.
    """
    device = torch.device(device)
    # its own generator: extracting (e.g. for an evaluation) must not advance the global RNG a training
    # run draws from, or a resumed run would diverge from an uninterrupted one
    loader = DataLoader(RecordImages(records, build_test_transform(height, width), preloaded), batch_size=batch_size,
                        shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda",
                        generator=runtime.make_generator(0))
    channels_last = runtime.use_channels_last(device)
    model = runtime.to_memory_format(model.to(device), channels_last)
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.no_grad(), runtime.autocast(device, bf16):
            for images, is_ir in runtime.progress(raise_image_errors(loader), desc="features", total=len(loader),
                                                  unit="batch", disable=None if progress else True):
                images = runtime.to_memory_format(images.to(device, non_blocking=True), channels_last)
                rows.append(embed_batch(model, images, is_ir.to(device), flip, normalise).cpu())
    finally:
        model.train(was_training)
    features = torch.cat(rows) if rows else torch.empty(0, model.feature_dim)
    logger.info("extracted %d features of dimension %d on %s", features.shape[0], features.shape[1], device)
    return features


def extract_feature_set(model: nn.Module, records: Sequence[Record], device: torch.device,
                        **kwargs) -> FeatureSet:
    """`extract_features` wrapped with its records in a FeatureSet (keyword arguments passed through)."""
    return FeatureSet(list(records), extract_features(model, records, device, **kwargs))
