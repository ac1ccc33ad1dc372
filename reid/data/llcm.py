"""LLCM in its official layout, with the community evaluation protocol.

Layout under `root`:
    idx/train_vis.txt, idx/train_nir.txt   lines `vis/0250/0250_c03_s200519_f13770_vis.jpg <label>`
    idx/test_id.txt                         one line of comma-separated test ids
    test_vis/cam<k>/<pid:04d>/, test_nir/cam<k>/<pid:04d>/   the folders the test protocol walks
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from .dataset import VIDataset
from .index_files import load_index_records
from .io import require_dir, require_file, require_listed
from .record import Record
from .sysu import read_id_file, records_in_folders, sample_per_folder, trial_rng

VIS_TEST_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
# The reference protocol lists no near-infrared camera 3; kept so to reproduce its numbers.
NIR_TEST_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
DIRECTIONS = ("v2i", "i2v")

_CAMERA_IN_NAME = re.compile(r"_c(\d+)_")


def camid_from_name(relpath: str) -> int:
    """Camera number from the `_c<digits>_` part of an LLCM file name (`0250_c03_..._vis.jpg` -> 3)."""
    match = _CAMERA_IN_NAME.search(PurePosixPath(relpath).name)
    if match is None:
        raise ValueError(f"no camera part '_c<digits>_' in the file name of {relpath!r}")
    return int(match.group(1))


class LLCM(VIDataset):
    """LLCM: training from the index files; visible-to-infrared and infrared-to-visible evaluation."""

    name = "llcm"

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        require_dir(self.root, "LLCM root")
        index_dir = self.root / "idx"
        self.train = (self._read_train(index_dir / "train_vis.txt", "vis")
                      + self._read_train(index_dir / "train_nir.txt", "ir"))
        test_id_file = require_file(index_dir / "test_id.txt", "LLCM test id list")
        self.test_ids = sorted(set(require_listed(read_id_file(test_id_file), test_id_file, "test ids")))

    def _read_train(self, index_file: Path, modality: str) -> list[Record]:
        """The training records of one index file; DatasetLayoutError naming it when it lists none."""
        return require_listed(load_index_records(self.root, index_file, modality, camid_from_name), index_file,
                              "training images")

    def test_images(self) -> list[Record]:
        """Every image in the test_vis and test_nir camera folders of the test ids."""
        vis_dir = require_dir(self.root / "test_vis", "LLCM visible test folder")
        nir_dir = require_dir(self.root / "test_nir", "LLCM near-infrared test folder")
        return (records_in_folders(vis_dir, self.test_ids, dict.fromkeys(VIS_TEST_CAMERAS, "vis"))
                + records_in_folders(nir_dir, self.test_ids, dict.fromkeys(NIR_TEST_CAMERAS, "ir")))

    def test_split(self, direction: str = "v2i", trial: int = 0) -> tuple[list[Record], list[Record]]:
        """Return (query, gallery) of one evaluation trial.

        query: every test image of the query modality (visible cams 1-9, or near-infrared cams 1, 2, 4-9).
        gallery: per test id and camera of the other modality, one image drawn with
        `random.Random(trial).choice`, exactly as the reference's `random.seed(trial)`.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"LLCM direction must be one of {DIRECTIONS}, got {direction!r}")
        rng = trial_rng(trial)
        vis_dir = require_dir(self.root / "test_vis", "LLCM visible test folder")
        nir_dir = require_dir(self.root / "test_nir", "LLCM near-infrared test folder")
        vis_cameras = dict.fromkeys(VIS_TEST_CAMERAS, "vis")
        nir_cameras = dict.fromkeys(NIR_TEST_CAMERAS, "ir")
        if direction == "v2i":
            query = records_in_folders(vis_dir, self.test_ids, vis_cameras)
            gallery = sample_per_folder(nir_dir, self.test_ids, nir_cameras, rng)
        else:
            query = records_in_folders(nir_dir, self.test_ids, nir_cameras)
            gallery = sample_per_folder(vis_dir, self.test_ids, vis_cameras, rng)
        return query, gallery
