"""Translated datasets on disk: the data contract between `vi-translate translate` (the writer) and
the ReID stage (the reader), which uses each image's translated view as its cross-modal view.

    OUT/<source path relative to the dataset root, suffix .png>   the translated image
    OUT/manifest.jsonl    one line per translated source: source, output, direction, status, error,
                          source_size, source_mtime_ns
    OUT/translation.json  checkpoint sha256, dataset_root (resolved), settings, counts

A source's last manifest line is its state. A torn last line (a killed writer) is ignored when read and
cut off (or, when it is a whole entry, ended) before the next append, so appends start on a fresh line.

A translation belongs to its source: `dataset_root` names the dataset it was made from, and each entry
the source's size in bytes and modification time (ns) when it was read. Size + mtime is a `stat`, not a
read of every image at every pairing (a content hash would be); it catches a replaced or rewritten file
(a rewrite sets a new mtime), not a different file of the same size whose old mtime was restored. Older
folders without these fields are accepted with a logged warning that they cannot be checked.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from .io import DatasetLayoutError, relative_path, require_dir
from .record import Record

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "translation.json"
DONE, FAILED = "done", "failed"
DIRECTION_OF = {"vis": "vis2ir", "ir": "ir2vis"}  # a record's modality -> the translation that makes its view
TAIL_BLOCK = 1 << 16  # bytes read at a time when looking for the manifest's last line


class StaleTranslationError(ValueError):
    """Translated views that are not of the given source images: another dataset root, or changed sources."""


@dataclass(frozen=True)
class ManifestEntry:
    """One source image's translation: paths relative to the dataset root and to OUT, and the source's size
    (bytes) and modification time (ns) when it was read (None in older manifests: not checkable)."""

    source: str
    output: str
    direction: str
    status: str
    error: str | None = None
    source_size: int | None = None
    source_mtime_ns: int | None = None

    def to_line(self) -> str:
        return json.dumps(asdict(self))

    @property
    def checkable(self) -> bool:
        """Whether the entry records its source's size and mtime."""
        return self.source_size is not None and self.source_mtime_ns is not None


def output_relpath(source_relpath: str) -> str:
    """Where a source image's translation goes inside OUT: the same relative path, as PNG."""
    return PurePosixPath(source_relpath).with_suffix(".png").as_posix()


def source_stamp(path: str | os.PathLike) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a source image: what its manifest entry records."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def source_change(entry: ManifestEntry, path: str | os.PathLike) -> str | None:
    """How the source image at `path` differs from the one `entry` was translated from, as a sentence naming
    it; None when it is the same, or when the entry records nothing to compare."""
    if not entry.checkable:
        return None
    size, mtime_ns = source_stamp(path)
    changes = []
    if size != entry.source_size:
        changes.append(f"size {entry.source_size} -> {size} bytes")
    if mtime_ns != entry.source_mtime_ns:
        changes.append(f"modified {_format_ns(entry.source_mtime_ns)} -> {_format_ns(mtime_ns)}")
    return f"{path} changed after it was translated ({', '.join(changes)})" if changes else None


def _format_ns(mtime_ns: int) -> str:
    seconds, fraction = divmod(mtime_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d} UTC"


def stale_error(changes: list[str], remedy: str) -> StaleTranslationError:
    """One error for the changed sources (`source_change` sentences): the first, how many more, the remedy."""
    more = f" (and {len(changes) - 1} more changed images)" if len(changes) > 1 else ""
    return StaleTranslationError(f"{changes[0]}{more}; {remedy}")


def root_mismatch(summary: dict, dataset_root: str | os.PathLike, summary_path: Path) -> str | None:
    """Why the translations `summary` (translation.json, at `summary_path`) describes are not of the dataset at
    `dataset_root`, naming both roots; None when they are, or when an older summary names no root (logged)."""
    recorded, given = summary.get("dataset_root"), Path(dataset_root).resolve()
    if recorded is None:
        logger.warning("%s records no dataset_root (written by an older vi-translate): cannot check that its "
                       "translations are of %s", summary_path, given)
        return None
    if Path(recorded) != given:
        return (f"{summary_path}: these translations were made from the dataset at {recorded}, not from {given} "
                "(same relative paths would pair each image with another image's translation)")
    return None


def warn_unchecked(entries: Iterable[ManifestEntry], out_dir: str | os.PathLike) -> None:
    """Log how many done entries record no source size/mtime (an older manifest): they cannot be checked."""
    done = [entry for entry in entries if entry.status == DONE]
    unchecked = sum(not entry.checkable for entry in done)
    if unchecked:
        logger.warning("%s: %d of %d translations record no size/mtime of their source (written by an older "
                       "vi-translate); they cannot be checked against the source images (translate into a new "
                       "folder to have them checked)", Path(out_dir) / MANIFEST_NAME, unchecked, len(done))


def read_manifest(out_dir: str | os.PathLike) -> dict[str, ManifestEntry]:
    """source -> its latest entry; {} when there is no manifest. A torn last line is skipped; any other
    malformed line is an error naming the file and line."""
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    lines = path.read_text(errors="replace").splitlines()
    entries: dict[str, ManifestEntry] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        entry = _parse_entry(line)
        if entry is None:
            if number == len(lines):  # torn by a killed writer; that image is simply translated again
                logger.warning("%s: ignoring a torn last line", path)
                continue
            raise DatasetLayoutError(f"{path}, line {number}: not a manifest entry ({line[:80]!r}); delete that "
                                     "line, and its image is translated again by the next vi-translate translate")
        entries[entry.source] = entry
    return entries


def _parse_entry(line: str | bytes) -> ManifestEntry | None:
    """The entry a manifest line holds; None when it is not one (torn, or garbage)."""
    try:
        return ManifestEntry(**json.loads(line))
    except (ValueError, TypeError):
        return None


def append_manifest(out_dir: str | os.PathLike, entries: list[ManifestEntry]) -> None:
    """Append entries (one JSON line each) after repairing a torn last line, and flush them to disk."""
    path = Path(out_dir) / MANIFEST_NAME
    repair_manifest(path)
    with open(path, "a") as handle:
        handle.writelines(entry.to_line() + "\n" for entry in entries)
        handle.flush()
        os.fsync(handle.fileno())


def repair_manifest(path: Path) -> None:
    """Make the manifest at `path` end with a whole line: a torn last line is cut off, a whole entry that only
    lacks its newline gets it; then fsync. Each is one write, so a kill during the repair leaves either state."""
    if not path.is_file():
        return
    with open(path, "r+b") as handle:
        start, last = _last_line(handle)
        whole = _parse_entry(last) is not None
        if not last.strip() or (whole and last.endswith(b"\n")):
            return
        if whole:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")
            logger.warning("%s: ended a last line that lacked its newline", path)
        else:
            handle.truncate(start)
            logger.warning("%s: cut off a torn last line (%d bytes); its image is translated again", path,
                           len(last))
        handle.flush()
        os.fsync(handle.fileno())


def _last_line(handle) -> tuple[int, bytes]:
    """(offset, bytes) of the last line of a binary file, its newline included when it has one; (0, b"")
    for an empty file. Reads backwards from the end, a block at a time."""
    position = handle.seek(0, os.SEEK_END)
    tail = b""
    while position > 0:
        block = min(TAIL_BLOCK, position)
        position -= block
        handle.seek(position)
        tail = handle.read(block) + tail
        newline = tail.rfind(b"\n", 0, len(tail) - 1)  # the newline before the last line
        if newline >= 0:
            return position + newline + 1, tail[newline + 1:]
    return 0, tail


class TranslatedViews:
    """Pairs records of a dataset with their translated views written under `out_dir`; refuses views made from
    another dataset root, or from a source image that has changed since."""

    def __init__(self, out_dir: str | os.PathLike, dataset_root: str | os.PathLike) -> None:
        self.out_dir = require_dir(out_dir, "translated dataset")
        summary = self.out_dir / SUMMARY_NAME
        if not summary.is_file():
            raise DatasetLayoutError(f"translated dataset: expected {summary} (written by vi-translate translate)")
        self.summary = json.loads(summary.read_text())
        self.dataset_root = Path(dataset_root)
        problem = root_mismatch(self.summary, dataset_root, summary)
        if problem:
            raise StaleTranslationError(f"{problem}; pair them with that dataset, or translate this one into "
                                        "another folder with vi-translate translate")
        self.entries = {source: entry for source, entry in read_manifest(self.out_dir).items() if entry.status == DONE}
        warn_unchecked(self.entries.values(), self.out_dir)

    def view_path(self, record: Record) -> str | None:
        """Absolute path of the record's translated view, None when it has none."""
        entry = self._entry(record)
        return None if entry is None else str(self.out_dir / entry.output)

    def _entry(self, record: Record) -> ManifestEntry | None:
        """The done entry of the record's translation in its modality's direction, if any."""
        entry = self.entries.get(relative_path(record.path, self.dataset_root))
        return entry if entry is not None and entry.direction == DIRECTION_OF[record.modality] else None

    def pair(self, records: list[Record], *, skip_missing: bool = False) -> tuple[list[Record], list[str]]:
        """(records, view paths) aligned; a record without a view is an error naming it, or dropped
        with `skip_missing=True` (the count is logged). A record whose source image changed after it was
        translated is a StaleTranslationError naming it and what differs."""
        kept, views, missing, changed = [], [], [], []
        for record in records:
            entry = self._entry(record)
            if entry is None:
                missing.append(record)
                continue
            change = source_change(entry, record.path)
            if change:
                changed.append(change)
            kept.append(record)
            views.append(str(self.out_dir / entry.output))
        if changed:
            raise stale_error(changed, f"translate it again (vi-translate translate --overwrite --out {self.out_dir})")
        if missing and not skip_missing:
            raise KeyError(f"{len(missing)} of {len(records)} images have no translated view in {self.out_dir}, "
                           f"e.g. {missing[0].path} ({missing[0].modality}); translate them with vi-translate "
                           "translate, or pass skip_missing=True")
        if missing:
            logger.warning("%d of %d images have no translated view in %s; they are left out", len(missing),
                           len(records), self.out_dir)
        return kept, views
