"""The loaders on the real index files of SYSU-MM01, RegDB and LLCM (../shared/formats beside the checkout).

The images themselves are not there: SYSU-MM01 and LLCM test trees are rebuilt in tmp_path with empty
placeholder files named by the real id and index files; RegDB loads from its index files alone.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path, PurePosixPath

import pytest

from reid.data.index_files import read_index_file
from reid.data.llcm import LLCM, NIR_TEST_CAMERAS, VIS_TEST_CAMERAS, camid_from_name
from reid.data.regdb import TRIALS, RegDB
from reid.data.sysu import GALLERY_CAMERAS, IR_CAMERAS, SYSUMM01, read_id_file

FORMATS = Path(__file__).resolve().parents[2].parent / "shared" / "formats"
REQUIRED = "VIREID_REQUIRE_FORMATS"  # set to 1 (.ci/run does): absent index files fail these tests, not skip them
SYSU_CAMERAS = range(1, 7)


def real_formats(folder: Path, required: bool) -> Path:
    """`folder` when it holds the real index files; else skip these tests (fail them when `required`), saying
    where they were looked for."""
    if folder.is_dir():
        return folder
    message = (f"the real index files of SYSU-MM01, RegDB and LLCM are not at {folder}: these tests read them from "
               f"shared/formats beside the checkout (clone the repository next to shared/ to run them)")
    if required:
        pytest.fail(f"{message}; {REQUIRED}=1 requires them")
    pytest.skip(message)


@pytest.fixture(scope="module")
def formats() -> Path:
    return real_formats(FORMATS, os.environ.get(REQUIRED) == "1")


def test_absent_index_files_skip_naming_where_they_were_looked_for_and_fail_where_required(tmp_path):
    missing = tmp_path / "shared" / "formats"
    outcomes = {}
    for required in (False, True):
        with pytest.raises((pytest.skip.Exception, pytest.fail.Exception)) as raised:  # neither may escape
            real_formats(missing, required=required)
        outcomes[required] = raised
    assert outcomes[False].type is pytest.skip.Exception
    assert outcomes[False].match(f"not at {missing}.*beside the checkout")
    assert outcomes[True].type is pytest.fail.Exception and outcomes[True].match(f"{REQUIRED}=1 requires them")
    assert real_formats(tmp_path, required=True) == tmp_path
    ci = Path(__file__).resolve().parents[2] / ".ci" / "run"
    assert f"export {REQUIRED}=1" in ci.read_text()


def copy_files(source: Path, target: Path) -> None:
    """Copy the files of `source` into a new folder `target` (contents only: the originals are read-only)."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        shutil.copyfile(path, target / path.name)


def make_placeholder(path: Path) -> None:
    """Create an empty file (`open` is several times faster than `Path.touch` on a new file)."""
    open(path, "xb").close()


# ---------------------------------------------------------------- SYSU-MM01


def sysu_image_count(pid: int, camid: int) -> int:
    """Placeholder images of one (id, camera) folder: 0 (no folder) to 3; cam3 or cam6 has some for every id."""
    return (pid + 2 * camid) % 4


@pytest.fixture(scope="module")
def sysu_root(formats: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sysu")
    copy_files(formats / "SYSU-MM01" / "exp", root / "exp")
    for camid in SYSU_CAMERAS:
        (root / f"cam{camid}").mkdir()
    for pid in read_id_file(root / "exp" / "available_id.txt"):
        for camid in SYSU_CAMERAS:
            count = sysu_image_count(pid, camid)
            if count:
                folder = root / f"cam{camid}" / f"{pid:04d}"
                folder.mkdir()
                for n in range(1, count + 1):
                    make_placeholder(folder / f"{n:04d}.jpg")
    return root


def test_sysu_real_id_files(sysu_root: Path):
    exp = sysu_root / "exp"
    train, val, test = (read_id_file(exp / f"{split}_id.txt") for split in ("train", "val", "test"))
    dataset = SYSUMM01(sysu_root)
    assert (len(train), len(val), len(test)) == (296, 99, 96)
    assert len(dataset.train_ids) == 395 and len(dataset.test_ids) == 96
    assert not set(dataset.train_ids) & set(dataset.test_ids)
    assert set(read_id_file(exp / "available_id.txt")) == set(dataset.train_ids) | set(dataset.test_ids)
    assert dataset.summary()["ids"] == 395
    expected = sum(sysu_image_count(pid, camid) for pid in dataset.train_ids for camid in SYSU_CAMERAS)
    assert len(dataset.train) == expected


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_sysu_real_test_split_sizes(sysu_root: Path, mode: str):
    dataset = SYSUMM01(sysu_root)
    query, gallery = dataset.test_split(mode=mode, trial=0)
    assert len(query) == sum(sysu_image_count(pid, camid) for pid in dataset.test_ids for camid in IR_CAMERAS)
    assert len(gallery) == sum(
        1 for pid in dataset.test_ids for camid in GALLERY_CAMERAS[mode] if sysu_image_count(pid, camid))
    assert {record.pid for record in query} == set(dataset.test_ids)


# ---------------------------------------------------------------- RegDB


@pytest.mark.parametrize("trial", TRIALS)
def test_regdb_real_trial(formats: Path, trial: int):
    dataset = RegDB(formats / "RegDB", trial=trial)
    summary = dataset.summary()
    assert summary["ids"] == 206
    assert summary["images"] == {"vis": 2060, "ir": 2060}
    assert summary["ids_per_modality"] == {"vis": 206, "ir": 206}
    query, gallery = dataset.test_split(direction="v2t")
    for records in (query, gallery):
        assert set(Counter(record.pid for record in records).values()) == {10}
        assert len(records) == 2060
    train_ids = {record.pid for record in dataset.train}
    test_ids = {record.pid for record in query}
    assert test_ids == {record.pid for record in gallery}
    assert not train_ids & test_ids
    assert len(train_ids | test_ids) == 412


# ---------------------------------------------------------------- LLCM


@pytest.fixture(scope="module")
def llcm_root(formats: Path, tmp_path_factory) -> Path:
    """The real idx files, and test_vis / test_nir placeholder trees built from idx/test_{vis,nir}.txt."""
    root = tmp_path_factory.mktemp("llcm")
    copy_files(formats / "LLCM" / "idx", root / "idx")
    for spectrum in ("vis", "nir"):
        made: set[Path] = set()
        for entry in read_index_file(root / "idx" / f"test_{spectrum}.txt"):
            name = PurePosixPath(entry.relpath).name
            folder = root / f"test_{spectrum}" / f"cam{camid_from_name(name)}" / f"{entry.pid:04d}"
            if folder not in made:
                folder.mkdir(parents=True)
                made.add(folder)
            make_placeholder(folder / name)
    return root


def nonempty_folders(index_file: Path, cameras: tuple[int, ...]) -> int:
    """Distinct (id, camera) pairs of an index file among `cameras`."""
    pairs = {(entry.pid, camid_from_name(entry.relpath)) for entry in read_index_file(index_file)}
    return sum(1 for _, camid in pairs if camid in cameras)


def test_llcm_real_train(formats: Path):
    dataset = LLCM(formats / "LLCM")  # training and test ids come from the index files alone
    summary = dataset.summary()
    assert summary["ids"] == 713
    assert summary["images"] == {"vis": 16946, "ir": 13975}
    assert len(dataset.test_ids) == 351
    assert not {record.pid for record in dataset.train} & set(dataset.test_ids)


@pytest.mark.parametrize("direction, query_size, gallery_index, gallery_cameras", [
    ("v2i", 8680, "test_nir.txt", NIR_TEST_CAMERAS),
    ("i2v", 7166, "test_vis.txt", VIS_TEST_CAMERAS),
])
def test_llcm_real_test_split(llcm_root: Path, direction, query_size, gallery_index, gallery_cameras):
    dataset = LLCM(llcm_root)
    query, gallery = dataset.test_split(direction=direction, trial=0)
    assert len(query) == query_size
    assert {record.pid for record in query} == set(dataset.test_ids)
    assert len(gallery) == nonempty_folders(llcm_root / "idx" / gallery_index, gallery_cameras)
