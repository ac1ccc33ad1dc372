"""Index files of RegDB and LLCM: lines `<path relative to root> <relabelled label>`.

The identity is taken from the path's folder (`Visible/116/...` -> 116, `vis/0250/...` -> 250); the
label column is only checked to be a one-to-one function of that folder id within the file.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .io import DatasetLayoutError, require_file
from .record import Record


@dataclass(frozen=True)
class IndexEntry:
    """One line of an index file."""

    relpath: str
    pid: int
    label: int
    line: int


def read_index_file(path: str | os.PathLike) -> list[IndexEntry]:
    """Parse an index file; blank lines are skipped, CRLF endings accepted.

    Raises DatasetLayoutError naming the file and line of a malformed line or of a label that is not
    a one-to-one function of the identity folder.
    """
    path = require_file(path, "index file")
    entries = []
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if text.strip():
            entries.append(_parse_line(text, path, number))
    _check_labels(entries, path)
    return entries


def _parse_line(text: str, path: Path, number: int) -> IndexEntry:
    fields = text.rsplit(maxsplit=1)
    folder = PurePosixPath(fields[0]).parent.name
    if len(fields) != 2 or not fields[1].isdecimal() or not folder.isdecimal():
        raise DatasetLayoutError(
            f"{path}, line {number}: expected '<folder>/<pid>/<file> <label>', got {text.strip()!r}")
    return IndexEntry(fields[0], int(folder), int(fields[1]), number)


def _check_labels(entries: list[IndexEntry], path: Path) -> None:
    label_of: dict[int, int] = {}
    pid_of: dict[int, int] = {}
    for entry in entries:
        label = label_of.setdefault(entry.pid, entry.label)
        pid = pid_of.setdefault(entry.label, entry.pid)
        if label != entry.label or pid != entry.pid:
            raise DatasetLayoutError(
                f"{path}, line {entry.line}: label {entry.label} of id {entry.pid} breaks the one-to-one "
                f"id-label mapping (id {entry.pid} had label {label}, label {entry.label} had id {pid})")


def load_index_records(root: Path, index_file: Path, modality: str,
                       camid_of: Callable[[str], int]) -> list[Record]:
    """Records of an index file, in file order; paths are `root / relpath`.

    camid_of: camera number from the relative path; a ValueError it raises becomes a
    DatasetLayoutError naming the file and line.
    """
    records = []
    for entry in read_index_file(index_file):
        try:
            camid = camid_of(entry.relpath)
        except ValueError as error:
            raise DatasetLayoutError(f"{index_file}, line {entry.line}: {error}") from None
        records.append(Record(str(root / entry.relpath), entry.pid, camid, modality))
    return records
