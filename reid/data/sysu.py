"""SYSU-MM01 in its official layout, with the community evaluation protocol.

Layout under `root`:
    exp/train_id.txt, exp/val_id.txt, exp/test_id.txt   one line of comma-separated ids each
    cam1 .. cam6/<pid:04d>/<n:04d>.jpg                   cams 1, 2, 4, 5 visible; 3, 6 infrared

The folder helpers here (`records_in_folders`, `sample_per_folder`) also serve LLCM, whose test
protocol is the same `cam<k>/<pid:04d>/` walk.
"""
from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .dataset import VIDataset
from .io import DatasetLayoutError, require_dir, require_file, require_listed
from .record import Record

logger = logging.getLogger(__name__)

VIS_CAMERAS = (1, 2, 4, 5)
IR_CAMERAS = (3, 6)
GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
CAMERA_MODALITY = {camid: ("ir" if camid in IR_CAMERAS else "vis") for camid in range(1, 7)}
EVALUATE_ON = ("test", "val")  # the ids the protocol runs on; "val": the held-out training ids, for tuning
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})

_ID_TOKEN = re.compile(r"[0-9]+")


def read_id_file(path: str | os.PathLike) -> list[int]:
    """Read a one-line list of comma-separated ids (e.g. `exp/test_id.txt`), in file order.

    Surrounding whitespace, a trailing newline and empty items ("1,,2,") are tolerated, and an
    empty file is an empty list (e.g. a synthetic tree without val ids); anything else raises
    DatasetLayoutError naming the file and the bad token.
    """
    path = require_file(path, "id list")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return []
    if len(lines) != 1:
        raise DatasetLayoutError(f"{path}: expected one line of comma-separated ids, found {len(lines)} lines")
    ids = []
    for token in lines[0].split(","):
        token = token.strip()
        if not token:
            continue
        if not _ID_TOKEN.fullmatch(token):
            raise DatasetLayoutError(f"{path}: malformed id {token!r}; expected comma-separated integers")
        ids.append(int(token))
    return ids


def list_images(folder: Path) -> list[str]:
    """Sorted names of the image files in `folder` (hidden files skipped); [] when it does not exist."""
    try:
        with os.scandir(folder) as entries:
            names = [entry.name for entry in entries if _is_image(entry)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(names)


def _is_image(entry: os.DirEntry) -> bool:
    return (not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
            and entry.is_file())


def identity_folder(base: Path, camid: int, pid: int) -> Path:
    """The folder `<base>/cam<camid>/<pid:04d>` holding one identity's images from one camera."""
    return base / f"cam{camid}" / f"{pid:04d}"


def records_in_folders(base: Path, pids: Iterable[int], cameras: Mapping[int, str]) -> list[Record]:
    """Every image of `<base>/cam<c>/<pid:04d>/`: ids in the given order, cameras in mapping order, sorted names.

    cameras: camera number -> modality of its records. Missing folders are skipped.
    """
    records = []
    for pid in pids:
        for camid, modality in cameras.items():
            folder = identity_folder(base, camid, pid)
            records.extend(Record(str(folder / name), pid, camid, modality) for name in list_images(folder))
    return records


def sample_per_folder(base: Path, pids: Iterable[int], cameras: Mapping[int, str],
                      rng: random.Random, shots: int = 1) -> list[Record]:
    """Draw gallery images per (id, camera) folder, ids in the given order, cameras in mapping order.

    shots == 1: `rng.choice(sorted names)`, the reference's single-shot draw, so a `random.Random(trial)`
    reproduces its galleries exactly. shots > 1: `rng.sample(sorted names, min(shots, n))`.
    Missing and empty folders are skipped.
    """
    records = []
    for pid in pids:
        for camid, modality in cameras.items():
            folder = identity_folder(base, camid, pid)
            names = list_images(folder)
            if not names:
                continue
            picked = [rng.choice(names)] if shots == 1 else rng.sample(names, min(shots, len(names)))
            records.extend(Record(str(folder / name), pid, camid, modality) for name in picked)
    return records


def trial_rng(trial: int) -> random.Random:
    """The gallery generator of one trial: `random.Random(trial)` draws as the reference's `random.seed(trial)`."""
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise ValueError(f"trial must be an int (the protocol uses 0..9), got {trial!r}")
    return random.Random(trial)


class SYSUMM01(VIDataset):
    """SYSU-MM01: training on the train + val ids of all six cameras; infrared-to-visible evaluation.

    evaluate_on="val" holds the val ids out for tuning a recipe without looking at the test split: training
    on `exp/train_id.txt` alone, and the test protocol run on the ids of `exp/val_id.txt`.
    """

    name = "sysu"

    def __init__(self, root: str | os.PathLike, evaluate_on: str = "test") -> None:
        super().__init__(root)
        if evaluate_on not in EVALUATE_ON:
            raise ValueError(f"evaluate_on must be one of {EVALUATE_ON}, got {evaluate_on!r}")
        require_dir(self.root, "SYSU-MM01 root")
        for camid in CAMERA_MODALITY:
            require_dir(self.root / f"cam{camid}", f"SYSU-MM01 camera {camid} folder")
        val_ids = self._read_ids("val_id.txt", required="val ids to hold out" if evaluate_on == "val" else None)
        if evaluate_on == "val":
            self.train_ids = sorted(set(self._read_ids("train_id.txt", required="training ids")))
            self.test_ids = sorted(set(val_ids))
        else:
            self.train_ids = sorted(set(self._read_ids("train_id.txt", required="training ids") + val_ids))
            self.test_ids = sorted(set(self._read_ids("test_id.txt", required="test ids")))
        self.train = records_in_folders(self.root, self.train_ids, CAMERA_MODALITY)
        self._warn_ids_without_images()

    def _read_ids(self, file_name: str, required: str | None = None) -> list[int]:
        """The ids of `exp/<file_name>`; required: what it must list (DatasetLayoutError naming it when empty)."""
        ids = read_id_file(require_file(self.root / "exp" / file_name, "SYSU-MM01 id list"))
        return require_listed(ids, self.root / "exp" / file_name, required) if required else ids

    def _warn_ids_without_images(self) -> None:
        missing = sorted(set(self.train_ids) - {record.pid for record in self.train})
        if missing:
            logger.warning("%s: %d of %d training ids have no images in any camera folder (first: %s)",
                           self.root, len(missing), len(self.train_ids), missing[:10])

    def test_images(self) -> list[Record]:
        """Every image of the test ids, from all six cameras."""
        return records_in_folders(self.root, self.test_ids, CAMERA_MODALITY)

    def test_split(self, mode: str = "all", trial: int = 0, shots: int = 1) -> tuple[list[Record], list[Record]]:
        """Return (query, gallery) of one evaluation trial.

        query: every cam3 / cam6 (infrared) image of the test ids, the same in both modes.
        gallery: per test id and visible camera (`all`: 1, 2, 4, 5; `indoor`: 1, 2), `shots` images drawn
        with `random.Random(trial)`. Single-shot reproduces the reference galleries exactly. Multi-shot
        departs from the reference on purpose: its draw there is unseeded numpy and crashes on folders
        with fewer than 10 images; here it is seeded by `trial` and takes all images of smaller folders.
        """
        if mode not in GALLERY_CAMERAS:
            raise ValueError(f"mode must be one of {tuple(GALLERY_CAMERAS)}, got {mode!r}")
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
            raise ValueError(f"shots must be an int >= 1 (the protocol uses 1 or 10), got {shots!r}")
        rng = trial_rng(trial)
        query = records_in_folders(self.root, self.test_ids, dict.fromkeys(IR_CAMERAS, "ir"))
        gallery_cameras = dict.fromkeys(GALLERY_CAMERAS[mode], "vis")
        gallery = sample_per_folder(self.root, self.test_ids, gallery_cameras, rng, shots)
        return query, gallery
