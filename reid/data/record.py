"""The unit every dataset yields: one image, its identity, camera and modality."""
from __future__ import annotations

from dataclasses import dataclass

MODALITIES = ("vis", "ir")


@dataclass(frozen=True)
class Record:
    """One image of a dataset.

    path: absolute path of the image file.
    pid: person identity as the dataset names it (folder id), not relabelled.
    camid: camera number as the dataset names it (SYSU-MM01 1..6, LLCM 1..9, RegDB 1=visible 2=thermal).
    modality: "vis" (RGB camera) or "ir" (infrared / thermal / near-infrared camera).
    """

    path: str
    pid: int
    camid: int
    modality: str

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"Record modality must be one of {MODALITIES}, got {self.modality!r} for {self.path}")
