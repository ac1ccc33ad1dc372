"""The training set of one epoch: each image with its pseudo-label and, when given, its translated view."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torch.utils.data import Dataset

from .io import read_image
from .preload import PreloadedImages
from .record import Record

OTHER_MODALITY = {"vis": "ir", "ir": "vis"}


class TrainingImages(Dataset):
    """index -> {"image": [3, H, W], "label", "is_ir", "index"} plus "view": [3, H, W] when views are given.

    transforms: modality -> PIL image to tensor. A translated view is in the other modality and gets
    that modality's transform. preloaded: images served from memory instead, normalised and not augmented (the
    random augmentation then runs on whole batches, `transforms.gpu_augment`); `transforms` is not used.
    """

    def __init__(self, records: list[Record], labels, transforms: dict[str, Callable[[Image.Image], torch.Tensor]],
                 view_paths: list[str] | None = None, preloaded: PreloadedImages | None = None) -> None:
        if len(labels) != len(records) or (view_paths is not None and len(view_paths) != len(records)):
            raise ValueError(f"records ({len(records)}), labels ({len(labels)}) and views "
                             f"({None if view_paths is None else len(view_paths)}) must align")
        self.records, self.labels, self.transforms, self.view_paths = records, labels, transforms, view_paths
        self.preloaded = preloaded

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        item = {"image": self._load(record.path, record.modality),
                "label": int(self.labels[index]), "is_ir": record.modality == "ir", "index": index}
        if self.view_paths is not None:
            item["view"] = self._load(self.view_paths[index], OTHER_MODALITY[record.modality])
        return item

    def _load(self, path: str, modality: str) -> torch.Tensor:
        if self.preloaded is not None:
            return self.preloaded.image(path)
        return self.transforms[modality](read_image(path))
