"""The dataset interface every loader implements, and a summary of record lists."""
from __future__ import annotations

import abc
from collections import Counter
from pathlib import Path

from .record import MODALITIES, Record


class VIDataset(abc.ABC):
    """A visible-infrared ReID dataset read from its official layout.

    `train` holds every training image; `test_split(**protocol)` returns the (query, gallery)
    record lists of one evaluation setting (one trial, mode or direction).
    """

    name: str = ""
    # whether the records' pids are the persons' identities: what the test protocol, cluster quality against true ids
    # and the oracle upper bound need; False for unlabelled footage (`folder`, pid -1 everywhere), which trains
    # translators and the unsupervised methods only
    has_identities: bool = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.train: list[Record] = []

    @abc.abstractmethod
    def test_split(self, **protocol) -> tuple[list[Record], list[Record]]:
        """Return (query, gallery) for one evaluation setting."""

    @abc.abstractmethod
    def test_images(self) -> list[Record]:
        """Every image any test split can draw from (queries and every gallery candidate)."""

    def summary(self) -> dict:
        """Counts of the training set: ids, images per modality and per camera."""
        return summarize_records(self.train)

    def __repr__(self) -> str:
        counts = summarize_records(self.train)
        return (f"{type(self).__name__}(root={str(self.root)!r}, train: {counts['ids']} ids, "
                f"{counts['images']['vis']} vis + {counts['images']['ir']} ir images)")


def summarize_records(records: list[Record]) -> dict:
    """Return {"ids", "images": {vis, ir}, "ids_per_modality": {vis, ir}, "cameras": {camid: count}}."""
    images = Counter(record.modality for record in records)
    return {
        "ids": len({record.pid for record in records}),
        "images": {modality: images.get(modality, 0) for modality in MODALITIES},
        "ids_per_modality": {
            modality: len({r.pid for r in records if r.modality == modality}) for modality in MODALITIES
        },
        "cameras": dict(sorted(Counter(record.camid for record in records).items())),
    }
