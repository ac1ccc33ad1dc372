"""Your own unlabelled footage as a training set: `load_dataset("folder", ROOT)` (`data.name: folder`).

Layout under `ROOT`, any nesting below the modality folders:
    vis/...   the visible (RGB) images
    ir/...    the infrared (thermal / near-infrared) images

No identities: every record has `pid = -1` and `has_identities` is False, so translator training, translation and
the unsupervised ReID methods run on it, while whatever needs true ids (the test protocol, cluster quality against
true ids, the `oracle` upper bound, the experiment runner's tables) does not: `test_split` raises
`NoIdentitiesError` and `test_images()` is empty.

Cameras (the camera-aware sampler draws a cluster's companions from its other cameras): the first folder level
under `vis/` and `ir/` is the camera. Each distinct first-level subfolder holding images (at any depth) is one
camera, and the images lying directly in `vis/` (or `ir/`) are one more, so a modality without subfolders is one
camera. The camera ids are the numbers of the folders' names when every camera of both modalities is a folder named
`cam<k>` / `camera<k>` (case-insensitive, `_` or `-` allowed before k) with k distinct across both modalities;
otherwise they are 1, 2, ... in order: the visible cameras, then the infrared ones, each modality's images lying
directly in its folder first, then its subfolders in natural sorted order (`cam2` before `cam10`). `cameras` maps
each camera's folder (relative to ROOT, e.g. "vis/cam3", or "vis" for the loose images) to its id.

Images: the suffixes every reader of the toolkit takes (`reid.data.sysu.IMAGE_SUFFIXES`, case-insensitive); hidden
files and folders (names starting with ".") are skipped; symlinked folders are followed (each real folder once).
Nothing is opened when loading: an unreadable image is an error naming the file where it is read.
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path

from .dataset import VIDataset, summarize_records
from .io import DatasetLayoutError, require_dir
from .record import MODALITIES, Record
from .sysu import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

NO_ID = -1  # the pid of every record
MODALITY_WORDS = {"vis": "visible", "ir": "infrared"}
LOOSE = ""  # the camera group of the images lying directly in a modality's folder
_CAMERA_NAME = re.compile(r"cam(?:era)?[_-]?(\d+)", re.IGNORECASE)
_DIGITS = re.compile(r"(\d+)")


class NoIdentitiesError(ValueError):
    """What needs true identities (a test split, cluster quality against true ids, the oracle) was asked of a
    dataset that has none; the message says what and why."""


class FolderDataset(VIDataset):
    """Unlabelled footage: ROOT/vis/... and ROOT/ir/..., every image a record with pid -1 (see the module
    docstring for the camera rule). `train` holds the visible images, then the infrared ones, each sorted by path."""

    name = "folder"
    has_identities = False

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        require_dir(self.root, "folder dataset root (ROOT/vis/... and ROOT/ir/...)")
        found = {modality: self._images_of(modality) for modality in MODALITIES}
        self.cameras = camera_ids({modality: sorted({group for group, _ in images})
                                   for modality, images in found.items()})
        self.train = [Record(str(self.root / modality / relpath), NO_ID,
                             self.cameras[_camera_folder(modality, group)], modality)
                      for modality in MODALITIES for group, relpath in found[modality]]
        logger.info("%s: %d visible + %d infrared images, no identities; cameras %s", self.root,
                    len(found["vis"]), len(found["ir"]), self.cameras)

    def _images_of(self, modality: str) -> list[tuple[str, str]]:
        """(camera group, path relative to ROOT/<modality>) of every image of one modality, sorted by path; the
        group is the first-level subfolder, LOOSE for images lying directly in the modality's folder."""
        base = self.root / modality
        if not base.is_dir():
            raise DatasetLayoutError(
                f"folder dataset: expected the {MODALITY_WORDS[modality]} images in a folder at {base}, but it does "
                f"not exist (layout: ROOT/vis/... and ROOT/ir/..., any nesting below)")
        relpaths = sorted(walk_images(base))
        if not relpaths:
            raise DatasetLayoutError(
                f"folder dataset: no {MODALITY_WORDS[modality]} images ({', '.join(sorted(IMAGE_SUFFIXES))}) under "
                f"{base}")
        return [(relpath.split("/", 1)[0] if "/" in relpath else LOOSE, relpath) for relpath in relpaths]

    def test_split(self, **protocol) -> tuple[list[Record], list[Record]]:
        raise NoIdentitiesError(
            f"{self.root}: data.name=folder has no identities, so it has no test split: the test protocol needs "
            f"query and gallery images labelled with their persons (evaluate on a labelled dataset: sysu, regdb, "
            f"llcm or synthetic)")

    def test_images(self) -> list[Record]:
        """None: a folder dataset has no test images."""
        return []

    def summary(self) -> dict:
        """Counts of the images per modality and camera; "ids" and "ids_per_modality" are None (unknown)."""
        return {**summarize_records(self.train), "ids": None, "ids_per_modality": None}

    def __repr__(self) -> str:
        counts = summarize_records(self.train)
        return (f"{type(self).__name__}(root={str(self.root)!r}, no identities, {counts['images']['vis']} vis + "
                f"{counts['images']['ir']} ir images, {len(self.cameras)} cameras)")


def walk_images(base: Path) -> list[str]:
    """Paths (relative to `base`, POSIX) of the image files anywhere under `base`: hidden files and folders skipped,
    symlinked folders followed, each real folder once (a link loop is not walked twice). Other files are skipped
    with one warning saying how many, by suffix (`skipped_files_message`)."""
    found, skipped, seen = [], Counter(), set()
    for folder, subfolders, files in os.walk(base, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        relative = Path(folder).relative_to(base)
        for name in files:
            if name.startswith(".") or not os.path.isfile(os.path.join(folder, name)):
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix in IMAGE_SUFFIXES:
                found.append((relative / name).as_posix())
            else:
                skipped[suffix] += 1
    if skipped:
        logger.warning("%s", skipped_files_message(skipped, base))
    return found


def skipped_files_message(skipped: Counter, base: str | os.PathLike) -> str:
    """E.g. "skipped 3 files that are not .bmp/.jpeg/.jpg/.png (2 .tif, 1 .webp) under BASE"; `skipped` counts
    the skipped files by lower-case suffix ("" for none)."""
    kinds = ", ".join(f"{count} {suffix or 'without suffix'}" for suffix, count in
                      sorted(skipped.items(), key=lambda item: (-item[1], item[0])))
    total = sum(skipped.values())
    return (f"skipped {total} file{'s' if total != 1 else ''} that {'are' if total != 1 else 'is'} not "
            f"{'/'.join(sorted(IMAGE_SUFFIXES))} ({kinds}) under {base}")


def camera_ids(groups: dict[str, list[str]]) -> dict[str, int]:
    """modality -> its camera groups (first-level folder names, LOOSE for the loose images) => camera folder
    (relative to ROOT) -> camera id, by the rule of the module docstring."""
    ordered = [(modality, group) for modality in MODALITIES
               for group in sorted(groups.get(modality, []), key=_natural_key)]
    numbers = [_camera_number(group) for _, group in ordered]
    if all(number is not None for number in numbers) and len(set(numbers)) == len(numbers):
        return {_camera_folder(modality, group): number for (modality, group), number in zip(ordered, numbers)}
    return {_camera_folder(modality, group): index for index, (modality, group) in enumerate(ordered, start=1)}


def _camera_number(group: str) -> int | None:
    """k of a folder named cam<k> / camera<k> (cam_3, Camera-03, ...), else None (also for the loose images)."""
    match = _CAMERA_NAME.fullmatch(group)
    return int(match.group(1)) if match else None


def _camera_folder(modality: str, group: str) -> str:
    return modality if group == LOOSE else f"{modality}/{group}"


def _natural_key(name: str) -> tuple:
    """Sort key putting the loose images first and "cam2" before "cam10"."""
    return (name != LOOSE, [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                            for part in _DIGITS.split(name) if part])
