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
    """index -> {"image": [3, H, W], "label", "is_ir", "index"}, plus "exchanged": [3, H, W] (CAJ's second,
    channel-exchanged copy of the same image) with `exchanged_copy`, and "view": [3, H, W] when views are given.

    transforms: kind ("vis", "vis_exchanged", "ir") -> PIL image to tensor. An image gets its modality's
    transform, its exchanged copy "vis_exchanged" (an independent draw on the same decoded image, as the
    references), a translated view (in the other modality) that modality's. preloaded: images served from memory
    instead, normalised and not augmented (the random augmentation then runs on whole batches,
    `transforms.gpu_augment`, which also makes the exchanged copy); `transforms` is not used.
    """

    def __init__(self, records: list[Record], labels, transforms: dict[str, Callable[[Image.Image], torch.Tensor]],
                 view_paths: list[str] | None = None, preloaded: PreloadedImages | None = None, *,
                 exchanged_copy: bool = False) -> None:
        if len(labels) != len(records) or (view_paths is not None and len(view_paths) != len(records)):
            raise ValueError(f"records ({len(records)}), labels ({len(labels)}) and views "
                             f"({None if view_paths is None else len(view_paths)}) must align")
        self.records, self.labels, self.transforms, self.view_paths = records, labels, transforms, view_paths
        self.preloaded = preloaded
        self.exchanged_copy = exchanged_copy and preloaded is None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        if self.preloaded is not None:
            item = {"image": self.preloaded.image(record.path)}
        else:
            decoded = read_image(record.path)
            item = {"image": self.transforms[record.modality](decoded)}
            if self.exchanged_copy:
                item["exchanged"] = self.transforms["vis_exchanged"](decoded)
        item |= {"label": int(self.labels[index]), "is_ir": record.modality == "ir", "index": index}
        if self.view_paths is not None:
            item["view"] = self._load(self.view_paths[index], OTHER_MODALITY[record.modality])
        return item

    def _load(self, path: str, kind: str) -> torch.Tensor:
        if self.preloaded is not None:
            return self.preloaded.image(path)
        return self.transforms[kind](read_image(path))
