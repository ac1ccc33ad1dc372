"""`vi-translate translate`: a complete mirrored tree, kill-and-rerun, corrupt inputs, refusals, the reader."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from reid.data import DatasetLayoutError, TranslatedViews, load_dataset, make_synthetic_sysu
from reid.data.translated import MANIFEST_NAME, read_manifest, source_stamp
from vi_translate.cli import main as translate_main

REPO = Path(__file__).resolve().parents[2]


def translate(checkpoint, root, out, *extra) -> int:
    return translate_main(["--log-level", "WARNING", "translate", "--checkpoint", str(checkpoint), "--dataset",
                           "synthetic", "--root", str(root), "--out", str(out), "--device", "cpu", "--workers", "0",
                           *extra])


def test_complete_mirrored_tree_and_reader(tiny_dataset, tiny_translator, tmp_path):
    out = tmp_path / "translated"
    assert translate(tiny_translator, tiny_dataset, out, "--batch-size", "4") == 0
    dataset = load_dataset("synthetic", tiny_dataset)
    for record in dataset.train:
        source = Path(record.path)
        view = out / source.relative_to(tiny_dataset).with_suffix(".png")
        assert view.is_file(), view
        assert Image.open(view).size == Image.open(source).size  # the source image's own size
    manifest = read_manifest(out)
    assert len(manifest) == len(dataset.train) and {e.status for e in manifest.values()} == {"done"}
    assert {e.direction for e in manifest.values()} == {"vis2ir", "ir2vis"}
    assert all((e.source_size, e.source_mtime_ns) == source_stamp(tiny_dataset / e.source) for e in manifest.values())
    summary = json.loads((out / "translation.json").read_text())
    assert summary["complete"] and summary["counts"]["done"] == len(dataset.train) and len(summary["checkpoint_sha256"]) == 64
    assert summary["dataset_root"] == str(tiny_dataset.resolve())

    views = TranslatedViews(out, tiny_dataset)
    records, paths = views.pair(dataset.train)
    assert records == dataset.train and paths[0] == str(out / Path(dataset.train[0].path).relative_to(tiny_dataset).with_suffix(".png"))
    test_records = dataset.test_images()[:2]
    with pytest.raises(KeyError, match="no translated view"):
        views.pair(dataset.train + test_records)
    kept, _ = views.pair(dataset.train + test_records, skip_missing=True)
    assert kept == dataset.train
    with pytest.raises(DatasetLayoutError, match="translation.json"):
        TranslatedViews(tmp_path, tiny_dataset)


def test_one_direction_then_the_other_and_split_all(tiny_dataset, tiny_translator, tmp_path):
    out = tmp_path / "translated"
    assert translate(tiny_translator, tiny_dataset, out, "--direction", "vis2ir") == 0
    assert {e.direction for e in read_manifest(out).values()} == {"vis2ir"}
    assert translate(tiny_translator, tiny_dataset, out, "--split", "all") == 0  # adds ir2vis and the test images
    dataset = load_dataset("synthetic", tiny_dataset)
    assert len(read_manifest(out)) == len(dataset.train) + len(dataset.test_images())


def test_corrupt_input_is_recorded_and_the_rest_translated(tiny_dataset, tiny_translator, tmp_path, capsys):
    root = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, root)
    broken = Path(next(r.path for r in load_dataset("synthetic", root).train if r.modality == "ir"))
    broken.write_bytes(b"not a jpeg at all")
    out = tmp_path / "translated"
    assert translate(tiny_translator, root, out) == 1  # non-zero exit status
    printed = capsys.readouterr().out
    assert "failed 1" in printed and broken.name in printed
    manifest = read_manifest(out)
    entry = manifest[str(broken.relative_to(root))]
    assert entry.status == "failed" and str(broken) in entry.error
    assert sum(e.status == "done" for e in manifest.values()) == len(load_dataset("synthetic", root).train) - 1
    assert not json.loads((out / "translation.json").read_text())["complete"]


def test_rerun_after_a_torn_manifest_line_translates_the_lost_image_again(tiny_dataset, tiny_translator, tmp_path):
    """A run killed while appending leaves half a line; the rerun cuts it off and translates that image again."""
    out = tmp_path / "translated"
    assert translate(tiny_translator, tiny_dataset, out) == 0
    manifest = out / MANIFEST_NAME
    lines = manifest.read_text().splitlines(keepends=True)
    lost = json.loads(lines[-1])["source"]
    manifest.write_text("".join(lines[:-1]) + lines[-1][:len(lines[-1]) // 2])
    assert lost not in read_manifest(out)
    assert translate(tiny_translator, tiny_dataset, out) == 0
    summary = json.loads((out / "translation.json").read_text())
    assert summary["counts"]["this_run"] == {"translated": 1, "failed": 0, "skipped": len(lines) - 1}
    assert [json.loads(line)["source"] for line in manifest.read_text().splitlines()] == \
        [json.loads(line)["source"] for line in lines]  # every line whole: the lost image's last
    assert summary["complete"] and summary["counts"]["done"] == len(lines)


def test_a_rerun_refuses_a_changed_source_naming_it_and_overwrite_translates_it_again(tiny_dataset, tiny_translator,
                                                                                      tmp_path, capsys):
    root = tmp_path / "dataset"
    shutil.copytree(tiny_dataset, root)
    out = tmp_path / "translated"
    assert translate(tiny_translator, root, out, "--direction", "vis2ir") == 0
    changed = Path(next(r.path for r in load_dataset("synthetic", root).train if r.modality == "vis"))
    size = changed.stat().st_size
    changed.write_bytes(changed.read_bytes() + b"\0" * 6)  # trailing bytes: still a readable JPEG
    records = load_dataset("synthetic", root).train
    message = f"{changed} changed after it was translated (size {size} -> {size + 6} bytes"
    with pytest.raises(ValueError, match=re.escape(message)):
        TranslatedViews(out, root).pair(records, skip_missing=True)
    assert translate(tiny_translator, root, out, "--direction", "vis2ir") == 2
    assert message in capsys.readouterr().err
    assert translate(tiny_translator, root, out, "--direction", "vis2ir", "--overwrite") == 0
    assert json.loads((out / "translation.json").read_text())["counts"]["this_run"]["translated"] == 1
    kept, _ = TranslatedViews(out, root).pair(records, skip_missing=True)
    assert len(kept) == sum(r.modality == "vis" for r in records)


def test_an_out_made_from_another_dataset_root_is_refused_naming_both(tiny_dataset, tiny_translator, tmp_path, capsys):
    """Same relative paths, other images: pairing them would give each image another person's translation."""
    other = tmp_path / "other"
    shutil.copytree(tiny_dataset, other)
    out = tmp_path / "translated"
    assert translate(tiny_translator, tiny_dataset, out, "--direction", "vis2ir") == 0
    message = f"made from the dataset at {tiny_dataset.resolve()}, not from {other.resolve()}"
    with pytest.raises(ValueError, match=re.escape(message)):
        TranslatedViews(out, other)
    assert translate(tiny_translator, other, out, "--direction", "vis2ir") == 2
    assert message in capsys.readouterr().err


def test_refusals(tiny_dataset, tiny_translator, tmp_path, capsys):
    assert translate(tiny_translator, tiny_dataset, tiny_dataset / "translated") == 2
    assert "inside" in capsys.readouterr().err
    out = tmp_path / "translated"
    assert translate(tiny_translator, tiny_dataset, out, "--direction", "vis2ir") == 0
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_translator.read_bytes() + b"")  # same weights, but compare a different file below
    with open(other, "ab") as handle:
        handle.write(b"\0")  # a different file: a different sha256
    assert translate(other, tiny_dataset, out) == 2
    assert "another checkpoint" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "note.txt").write_text("mine")
    assert translate(tiny_translator, tiny_dataset, tmp_path / "full") == 2
    assert "not empty" in capsys.readouterr().err


def test_folder_of_images(tiny_dataset, tiny_translator, tmp_path):
    out = tmp_path / "footage_translated"
    assert translate_main(["translate", "--checkpoint", str(tiny_translator), "--dataset", "folder", "--root",
                           str(tiny_dataset / "cam1"), "--modality", "vis", "--out", str(out), "--device", "cpu",
                           "--workers", "0"]) == 0
    sources = sorted((tiny_dataset / "cam1").rglob("*.jpg"))
    assert sorted(out.rglob("*.png")) == sorted(out / s.relative_to(tiny_dataset / "cam1").with_suffix(".png") for s in sources)


def test_killed_run_leaves_no_half_written_file_and_a_rerun_finishes(tiny_translator, tmp_path):
    root = tmp_path / "dataset"
    make_synthetic_sysu(root, num_ids=30, seed=1, images_per_camera=4, height=128, width=64)
    out = tmp_path / "translated"
    command = [sys.executable, "-m", "vi_translate.cli", "--log-level", "WARNING", "translate", "--checkpoint",
               str(tiny_translator), "--dataset", "synthetic", "--root", str(root), "--out", str(out), "--device",
               "cpu", "--batch-size", "1", "--workers", "1"]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if manifest.exists() and manifest.read_text().count("\n") >= 40:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    total = len(load_dataset("synthetic", root).train)
    done_at_kill = len(read_manifest(out))
    assert process.returncode == -signal.SIGKILL and 40 <= done_at_kill < total
    for image in out.rglob("*.png"):  # whatever was renamed into place is a whole image
        Image.open(image).load()
    assert subprocess.run(command, cwd=REPO, env=env, capture_output=True).returncode == 0
    entries = read_manifest(out)
    assert len(entries) == total and all(e.status == "done" for e in entries.values())
    assert not list(out.rglob("*.tmp")) and len(list(out.rglob("*.png"))) == total
