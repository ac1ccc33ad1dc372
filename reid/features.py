"""Feature sets: features aligned with the records they describe, saved portably.

A features file stores image paths relative to the dataset root, so a file written on one machine
is looked up against the same dataset on another. It is written and read like a checkpoint
(atomic, `weights_only=True`, kind "features").
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint, require_state, save_checkpoint
from .data import Record, relative_path

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
