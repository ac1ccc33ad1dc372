"""The translated-dataset contract: a torn manifest line is repaired before the next append, and a translated
view is refused when it was made from another dataset root or from a source image that has changed since."""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

from reid.data import DatasetLayoutError, Record, TranslatedViews
from reid.data import translated
from reid.data.translated import (MANIFEST_NAME, SUMMARY_NAME, ManifestEntry, StaleTranslationError,
                                  append_manifest, output_relpath, read_manifest, source_stamp)


def entry(index: int) -> ManifestEntry:
    source = f"cam1/{index:04d}/0001.jpg"
    return ManifestEntry(source, output_relpath(source), "vis2ir", "done", source_size=100 + index,
                         source_mtime_ns=1_700_000_000_000_000_000 + index)


def strict_lines(out: Path) -> list[ManifestEntry]:
    """Every line of the manifest as an entry; fails on any torn or glued line, wherever it is."""
    return [ManifestEntry(**json.loads(line)) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def third_line_cut(line: bytes) -> dict[str, bytes]:
    """Ways a killed writer (or a crash) leaves the third line: name -> the bytes left of it."""
    return {"first byte": line[:1], "mid JSON": line[:len(line) // 2], "all but the closing brace": line[:-2],
            "whole JSON, no newline": line[:-1], "zero bytes of a crash": b"\0" * 16,
            "torn, then a newline": line[:len(line) // 2] + b"\n"}


CUTS = list(third_line_cut(b"x" * 10))


@pytest.mark.parametrize("block", [7, translated.TAIL_BLOCK])  # 7: the last line is found across several reads
@pytest.mark.parametrize("cut", CUTS)
def test_appending_after_a_torn_last_line_keeps_every_entry(tmp_path, monkeypatch, cut, block):
    monkeypatch.setattr(translated, "TAIL_BLOCK", block)
    append_manifest(tmp_path, [entry(1), entry(2)])
    manifest = tmp_path / MANIFEST_NAME
    with open(manifest, "ab") as handle:
        handle.write(third_line_cut((entry(3).to_line() + "\n").encode())[cut])
    survivors = [entry(1), entry(2)] + ([entry(3)] if cut == "whole JSON, no newline" else [])
    assert list(read_manifest(tmp_path).values()) == survivors  # a torn last line is skipped on reading

    append_manifest(tmp_path, [entry(4)])
    assert list(read_manifest(tmp_path).values()) == survivors + [entry(4)]
    append_manifest(tmp_path, [entry(5), entry(6)])  # the torn bytes are not left in the middle either
    assert strict_lines(tmp_path) == survivors + [entry(4), entry(5), entry(6)]


def test_a_whole_manifest_is_left_as_it_is(tmp_path):
    append_manifest(tmp_path, [entry(1)])
    (tmp_path / MANIFEST_NAME).write_bytes((tmp_path / MANIFEST_NAME).read_bytes() + b"\n")  # a blank last line
    append_manifest(tmp_path, [entry(2)])
    assert (tmp_path / MANIFEST_NAME).read_text() == f"{entry(1).to_line()}\n\n{entry(2).to_line()}\n"


def test_a_broken_line_before_the_last_is_an_error_naming_it(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text(f"{entry(1).to_line()}\n{{\"source\": \"cam\n{entry(2).to_line()}\n")
    with pytest.raises(DatasetLayoutError, match=rf"{MANIFEST_NAME}, line 2: not a manifest entry"):
        read_manifest(tmp_path)


def test_entries_of_an_older_manifest_are_read(tmp_path):
    """Lines without source_size / source_mtime_ns (older vi-translate) read as entries that cannot be checked."""
    old = {"source": "cam1/0001/0001.jpg", "output": "cam1/0001/0001.png", "direction": "vis2ir", "status": "done",
           "error": None}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(old) + "\n")
    read = read_manifest(tmp_path)["cam1/0001/0001.jpg"]
    assert read == ManifestEntry("cam1/0001/0001.jpg", "cam1/0001/0001.png", "vis2ir", "done")
    assert read.source_size is None and not read.checkable


# ------------------------------------------------------------------------------- views and their sources


def make_dataset(root: Path, names=("cam1/0001/0001.jpg", "cam3/0001/0001.jpg")) -> list[Record]:
    """A stand-in dataset: tiny files (pairing never decodes them), one visible and one infrared record."""
    records = []
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"jpeg")
        records.append(Record(str(root / name), 1, int(name[3]), "ir" if name.startswith("cam3") else "vis"))
    return records


def translate_stand_in(records: list[Record], root: Path, out: Path, *, stamped: bool = True) -> None:
    """What vi-translate translate writes, without a translator; `stamped=False`: as an older version did."""
    entries = []
    for record in records:
        source = Path(record.path).relative_to(root).as_posix()
        (out / output_relpath(source)).parent.mkdir(parents=True, exist_ok=True)
        (out / output_relpath(source)).write_bytes(b"png")
        size, mtime_ns = source_stamp(record.path) if stamped else (None, None)
        entries.append(ManifestEntry(source, output_relpath(source), "vis2ir" if record.modality == "vis" else "ir2vis",
                                     "done", source_size=size, source_mtime_ns=mtime_ns))
    append_manifest(out, entries)
    summary = {"checkpoint_sha256": "stand-in"} | ({"dataset_root": str(root.resolve())} if stamped else {})
    (out / SUMMARY_NAME).write_text(json.dumps(summary))


def test_views_of_the_same_untouched_sources_are_paired(tmp_path):
    records = make_dataset(tmp_path / "data")
    translate_stand_in(records, tmp_path / "data", tmp_path / "out")
    kept, views = TranslatedViews(tmp_path / "out", tmp_path / "data").pair(records)
    assert kept == records and views == [str(tmp_path / "out" / "cam1/0001/0001.png"),
                                         str(tmp_path / "out" / "cam3/0001/0001.png")]


def test_a_source_changed_in_size_is_refused_naming_it(tmp_path):
    records = make_dataset(tmp_path / "data")
    translate_stand_in(records, tmp_path / "data", tmp_path / "out")
    Path(records[1].path).write_bytes(b"jpeg, replaced")
    views = TranslatedViews(tmp_path / "out", tmp_path / "data")
    with pytest.raises(StaleTranslationError, match=rf"{re.escape(records[1].path)} changed after it was translated "
                                                    r"\(size 4 -> 14 bytes, modified .*\); translate it again"):
        views.pair(records)
    views.pair(records[:1])  # the untouched image still pairs


def test_a_source_rewritten_with_the_same_size_is_refused(tmp_path):
    records = make_dataset(tmp_path / "data")
    translate_stand_in(records, tmp_path / "data", tmp_path / "out")
    stat = os.stat(records[0].path)
    Path(records[0].path).write_bytes(b"JPEG")
    os.utime(records[0].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # later, on any clock
    changed = rf"{re.escape(records[0].path)} changed after it was translated"
    with pytest.raises(StaleTranslationError, match=rf"{changed} \(modified \d{{4}}-\d\d-\d\d .* UTC -> .* UTC\)"):
        TranslatedViews(tmp_path / "out", tmp_path / "data").pair(records)


def test_views_of_another_dataset_with_the_same_paths_are_refused_naming_both_roots(tmp_path):
    translate_stand_in(make_dataset(tmp_path / "data"), tmp_path / "data", tmp_path / "out")
    make_dataset(tmp_path / "other")
    data, other = (re.escape(str(tmp_path.resolve() / name)) for name in ("data", "other"))
    with pytest.raises(StaleTranslationError, match=rf"made from the dataset at {data}, not from {other}"):
        TranslatedViews(tmp_path / "out", tmp_path / "other")


def test_an_older_folder_is_accepted_with_warnings_that_it_cannot_be_checked(tmp_path, caplog):
    records = make_dataset(tmp_path / "data")
    translate_stand_in(records, tmp_path / "data", tmp_path / "out", stamped=False)
    Path(records[0].path).write_bytes(b"changed, but nothing was recorded to tell")
    with caplog.at_level(logging.WARNING, logger="reid.data.translated"):
        kept, _ = TranslatedViews(tmp_path / "out", tmp_path / "data").pair(records)
    assert kept == records
    assert "records no dataset_root" in caplog.text and "2 of 2 translations record no size/mtime" in caplog.text
