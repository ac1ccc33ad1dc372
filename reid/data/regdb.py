"""RegDB in its official layout: ten train/test trials given by index files.

Layout under `root`:
    idx/{train,test}_{visible,thermal}_{1..10}.txt   lines `Visible/116/<file>.bmp <label>`
    Visible/<pid>/, Thermal/<pid>/                    the images (not opened when loading)
"""
from __future__ import annotations

import os

from .dataset import VIDataset
from .index_files import load_index_records
from .io import require_dir, require_listed
from .record import Record

TRIALS = tuple(range(1, 11))
DIRECTIONS = ("v2t", "t2v")
# Spectrum in the index file names -> (modality, camid) of its records.
SPECTRA = {"visible": ("vis", 1), "thermal": ("ir", 2)}


class RegDB(VIDataset):
    """RegDB, one trial: `train` is visible then thermal training images; the test split pairs the two."""

    name = "regdb"

    def __init__(self, root: str | os.PathLike, trial: int = 1) -> None:
        if isinstance(trial, bool) or not isinstance(trial, int) or trial not in TRIALS:
            raise ValueError(f"RegDB trial must be one of {TRIALS[0]}..{TRIALS[-1]}, got {trial!r}")
        super().__init__(root)
        require_dir(self.root, "RegDB root")
        self.trial = trial
        self.train = self._read("train", "visible") + self._read("train", "thermal")
        self._test = {"vis": self._read("test", "visible"), "ir": self._read("test", "thermal")}

    def _read(self, split: str, spectrum: str) -> list[Record]:
        modality, camid = SPECTRA[spectrum]
        index_file = self.root / "idx" / f"{split}_{spectrum}_{self.trial}.txt"
        records = load_index_records(self.root, index_file, modality, lambda relpath: camid)
        return require_listed(records, index_file, "training images" if split == "train" else "test images")

    def test_images(self) -> list[Record]:
        """The trial's visible then thermal test images."""
        return self._test["vis"] + self._test["ir"]

    def test_split(self, direction: str = "v2t") -> tuple[list[Record], list[Record]]:
        """Return (query, gallery): "v2t" visible query vs thermal gallery, "t2v" the reverse; file order."""
        if direction not in DIRECTIONS:
            raise ValueError(f"RegDB direction must be one of {DIRECTIONS}, got {direction!r}")
        visible, thermal = list(self._test["vis"]), list(self._test["ir"])
        return (visible, thermal) if direction == "v2t" else (thermal, visible)
