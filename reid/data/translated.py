"""Translated datasets on disk: the data contract between `vi-translate translate` (the writer) and
the ReID stage (the reader), which uses each image's translated view as its cross-modal view.

    OUT/<source path relative to the dataset root, suffix .png>   the translated image
    OUT/manifest.jsonl    one line per translated source: source, output, direction, status, error
    OUT/translation.json  checkpoint sha256, settings, counts

A source's last manifest line is its state; a torn last line (a killed writer) is ignored.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from .io import DatasetLayoutError, relative_path, require_dir
from .record import Record

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "translation.json"
DONE, FAILED = "done", "failed"
DIRECTION_OF = {"vis": "vis2ir", "ir": "ir2vis"}  # a record's modality -> the translation that makes its view


@dataclass(frozen=True)
class ManifestEntry:
    """One source image's translation: paths relative to the dataset root and to OUT."""

    source: str
    output: str
    direction: str
    status: str
    error: str | None = None

    def to_line(self) -> str:
        return json.dumps(asdict(self))


def output_relpath(source_relpath: str) -> str:
    """Where a source image's translation goes inside OUT: the same relative path, as PNG."""
    return PurePosixPath(source_relpath).with_suffix(".png").as_posix()


def read_manifest(out_dir: str | os.PathLike) -> dict[str, ManifestEntry]:
    """source -> its latest entry; {} when there is no manifest. A malformed line other than the last
    is an error naming the file and line."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    entries: dict[str, ManifestEntry] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = ManifestEntry(**json.loads(line))
        except (ValueError, TypeError) as error:
            if number == len(lines):  # torn by a killed writer; that image is simply translated again
                logger.warning("%s: ignoring a torn last line", path)
                continue
            raise DatasetLayoutError(f"{path}, line {number}: not a manifest entry ({error})") from None
        entries[entry.source] = entry
    return entries


def append_manifest(out_dir: str | os.PathLike, entries: list[ManifestEntry]) -> None:
    """Append entries (one JSON line each) and flush them to disk."""
    with open(Path(out_dir) / MANIFEST_NAME, "a") as handle:
        handle.writelines(entry.to_line() + "\n" for entry in entries)
        handle.flush()
        os.fsync(handle.fileno())


class TranslatedViews:
    """Pairs records of a dataset with their translated views written under `out_dir`."""

    def __init__(self, out_dir: str | os.PathLike, dataset_root: str | os.PathLike) -> None:
        self.out_dir = require_dir(out_dir, "translated dataset")
        summary = self.out_dir / SUMMARY_NAME
        if not summary.is_file():
            raise DatasetLayoutError(f"translated dataset: expected {summary} (written by vi-translate translate)")
        self.summary = json.loads(summary.read_text())
        self.dataset_root = Path(dataset_root)
        self.entries = {source: entry for source, entry in read_manifest(self.out_dir).items() if entry.status == DONE}

    def view_path(self, record: Record) -> str | None:
        """Absolute path of the record's translated view, None when it has none."""
        entry = self.entries.get(relative_path(record.path, self.dataset_root))
        if entry is None or entry.direction != DIRECTION_OF[record.modality]:
            return None
        return str(self.out_dir / entry.output)

    def pair(self, records: list[Record], *, skip_missing: bool = False) -> tuple[list[Record], list[str]]:
        """(records, view paths) aligned; a record without a view is an error naming it, or dropped
        with `skip_missing=True` (the count is logged)."""
        kept, views, missing = [], [], []
        for record in records:
            view = self.view_path(record)
            if view is None:
                missing.append(record)
            else:
                kept.append(record)
                views.append(view)
        if missing and not skip_missing:
            raise KeyError(f"{len(missing)} of {len(records)} images have no translated view in {self.out_dir}, "
                           f"e.g. {missing[0].path} ({missing[0].modality}); translate them with vi-translate "
                           "translate, or pass skip_missing=True")
        if missing:
            logger.warning("%d of %d images have no translated view in %s; they are left out", len(missing),
                           len(records), self.out_dir)
        return kept, views
