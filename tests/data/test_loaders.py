"""SYSU-MM01, RegDB and LLCM loaders on tiny placeholder trees (the loaders never open images)."""
from __future__ import annotations

import logging
import os
import random
import re
import shutil
from pathlib import Path

import pytest

from reid.data import DatasetLayoutError, load_dataset
from reid.data.llcm import LLCM, camid_from_name
from reid.data.regdb import RegDB
from reid.data.sysu import SYSUMM01, read_id_file

ALL_CAMERAS = range(1, 7)


# ---------------------------------------------------------------- helpers


def touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def reference_gallery(root: Path, test_ids: list[int], camera_dirs: list[str], trial: int) -> list[str]:
    """The community reference's single-shot gallery draw, written independently of the loaders."""
    state = random.getstate()
    random.seed(trial)
    files = []
    for pid in sorted("%04d" % x for x in test_ids):
        for cam in camera_dirs:
            img_dir = os.path.join(root, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                files.append(random.choice(new_files))
    random.setstate(state)
    return files


def make_sysu(root: Path, images: dict[tuple[int, int], int], train=(1, 2), val=(3,), test=(10, 11)) -> Path:
    """A SYSU-MM01 tree; images maps (camera, pid) to a number of files `0001.jpg`, ... (0: empty folder)."""
    (root / "exp").mkdir(parents=True, exist_ok=True)
    for split, ids in (("train", train), ("val", val), ("test", test)):
        (root / "exp" / f"{split}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    for camid in ALL_CAMERAS:
        (root / f"cam{camid}").mkdir(parents=True, exist_ok=True)
    for (camid, pid), count in images.items():
        touch_images(root / f"cam{camid}" / f"{pid:04d}", [f"{i:04d}.jpg" for i in range(1, count + 1)])
    return root


def every_camera(pids, count: int, cameras=ALL_CAMERAS) -> dict[tuple[int, int], int]:
    return {(camid, pid): count for pid in pids for camid in cameras}


def named(path: Path) -> str:
    """A `match=` pattern for a message naming `path`."""
    return re.escape(str(path))


def at_line(path: Path, number: int) -> str:
    return re.escape(f"{path}, line {number}:")


def folder_pairs(records) -> list[tuple[int, int]]:
    return [(record.pid, record.camid) for record in records]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path.resolve() / "data"


# ---------------------------------------------------------------- SYSU-MM01


def test_sysu_train_is_train_and_val_ids_from_all_six_cameras(root):
    dataset = SYSUMM01(make_sysu(root, every_camera([1, 2, 3, 10, 11], 2)))
    assert dataset.name == "sysu"
    assert dataset.train_ids == [1, 2, 3]
    assert {record.pid for record in dataset.train} == {1, 2, 3}
    assert len(dataset.train) == 3 * 6 * 2
    assert {record.camid: record.modality for record in dataset.train} == {
        1: "vis", 2: "vis", 3: "ir", 4: "vis", 5: "vis", 6: "ir"}
    order = [(record.pid, record.camid, Path(record.path).name) for record in dataset.train]
    assert order[:3] == [(1, 1, "0001.jpg"), (1, 1, "0002.jpg"), (1, 2, "0001.jpg")]
    assert order == sorted(order)
    assert dataset.train[0].path == str(root / "cam1" / "0001" / "0001.jpg")


def test_sysu_lists_only_image_files(root):
    make_sysu(root, {})
    folder = root / "cam1" / "0001"
    touch_images(folder, ["0002.JPG", "0001.png", ".hidden.jpg", "notes.txt", "0003.bmp"])
    (folder / "sub.jpg").mkdir()
    names = [Path(record.path).name for record in SYSUMM01(root).train]
    assert names == ["0001.png", "0002.JPG", "0003.bmp"]


def test_sysu_warns_about_train_ids_without_images(root, caplog):
    make_sysu(root, every_camera([1, 2], 1))
    with caplog.at_level(logging.WARNING, logger="reid.data.sysu"):
        dataset = SYSUMM01(root)
    assert dataset.train_ids == [1, 2, 3]
    assert "1 of 3 training ids have no images" in caplog.text


def test_sysu_query_is_infrared_images_of_test_ids(root):
    images = every_camera([1, 10, 11], 2)
    del images[(6, 11)]
    dataset = SYSUMM01(make_sysu(root, images))
    for mode in ("all", "indoor"):
        query, _ = dataset.test_split(mode=mode)
        assert folder_pairs(query) == [(10, 3), (10, 3), (10, 6), (10, 6), (11, 3), (11, 3)]
        assert {record.modality for record in query} == {"ir"}


def test_sysu_single_shot_gallery_has_one_image_per_camera_folder(root):
    images = every_camera([10, 11], 3)
    del images[(4, 10)]
    images[(5, 11)] = 0  # an empty folder is skipped
    dataset = SYSUMM01(make_sysu(root, images))
    _, gallery = dataset.test_split(mode="all")
    assert folder_pairs(gallery) == [(10, 1), (10, 2), (10, 5), (11, 1), (11, 2), (11, 4)]
    assert {record.modality for record in gallery} == {"vis"}
    _, indoor = dataset.test_split(mode="indoor")
    assert folder_pairs(indoor) == [(10, 1), (10, 2), (11, 1), (11, 2)]


def test_sysu_single_shot_reproduces_the_reference_draws(root):
    test_ids = [105, 12, 10, 7]
    images = {(camid, pid): 1 + (7 * pid + camid) % 5 for pid in test_ids for camid in ALL_CAMERAS}
    dataset = SYSUMM01(make_sysu(root, images, test=test_ids))
    for mode, cameras in (("all", ["cam1", "cam2", "cam4", "cam5"]), ("indoor", ["cam1", "cam2"])):
        for trial in range(4):
            _, gallery = dataset.test_split(mode=mode, trial=trial)
            assert [record.path for record in gallery] == reference_gallery(root, test_ids, cameras, trial)


def test_sysu_multi_shot_takes_up_to_shots_images_per_folder(root):
    dataset = SYSUMM01(make_sysu(root, {(1, 10): 12, (2, 10): 4, (4, 11): 1}))
    _, gallery = dataset.test_split(shots=10)
    assert folder_pairs(gallery) == [(10, 1)] * 10 + [(10, 2)] * 4 + [(11, 4)]
    assert len({record.path for record in gallery}) == 15


def test_sysu_gallery_is_fixed_per_trial_and_differs_across_trials(root):
    dataset = SYSUMM01(make_sysu(root, every_camera([10, 11], 20)))
    galleries = [tuple(record.path for record in dataset.test_split(trial=trial)[1]) for trial in range(10)]
    assert galleries[3] == tuple(record.path for record in dataset.test_split(trial=3)[1])
    assert len(set(galleries)) == 10
    assert dataset.test_split(trial=0)[0] == dataset.test_split(trial=5)[0]


@pytest.mark.parametrize("protocol, message", [
    ({"mode": "outdoor"}, "'outdoor'"),
    ({"shots": 0}, "shots"),
    ({"trial": "1"}, "'1'"),
    ({"trial": 1.0}, "trial"),
])
def test_sysu_rejects_invalid_protocol(root, protocol, message):
    dataset = SYSUMM01(make_sysu(root, every_camera([10], 1)))
    with pytest.raises(ValueError, match=message):
        dataset.test_split(**protocol)


@pytest.mark.parametrize("missing", ["exp/val_id.txt", "exp/test_id.txt", "cam6"])
def test_sysu_missing_layout_part_names_the_path(root, missing):
    make_sysu(root, every_camera([1], 1))
    target = root / missing
    if target.is_file():
        target.unlink()
    else:
        shutil.rmtree(target)
    with pytest.raises(DatasetLayoutError, match=named(target)):
        SYSUMM01(root)


def test_sysu_missing_root_names_it(tmp_path):
    with pytest.raises(DatasetLayoutError, match=named(tmp_path / "nowhere")):
        SYSUMM01(tmp_path / "nowhere")


def test_read_id_file_tolerates_whitespace_and_empty_items(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text(" 0891, 3,,0012 ,\n")
    assert read_id_file(path) == [891, 3, 12]
    path.write_text("\n")
    assert read_id_file(path) == []  # a split without ids (e.g. a synthetic tree with no val ids)


@pytest.mark.parametrize("text, message", [
    ("1,x2,3", "'x2'"), ("1,-2", "'-2'"), ("1,2\n3\n", "2 lines"),
])
def test_read_id_file_rejects_malformed_files(tmp_path, text, message):
    path = tmp_path / "ids.txt"
    path.write_text(text)
    with pytest.raises(DatasetLayoutError, match=message) as error:
        read_id_file(path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- RegDB


def regdb_lines(spectrum: str, labels: dict[int, int], per_id: int = 2) -> list[str]:
    folder, letter = {"visible": ("Visible", "v"), "thermal": ("Thermal", "t")}[spectrum]
    return [f"{folder}/{pid}/male_back_{letter}_{100 * pid + i:05d}_{pid}.bmp {label}"
            for pid, label in labels.items() for i in range(per_id)]


def write_index(path: Path, lines: list[str], newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode())


def make_regdb(root: Path, trial: int = 1, train=None, test=None) -> Path:
    """RegDB index files with CRLF endings as in the real release; no images."""
    splits = {"train": train or {116: 0, 7: 1}, "test": test or {40: 0, 3: 1, 9: 2}}
    for split, labels in splits.items():
        for spectrum in ("visible", "thermal"):
            write_index(root / "idx" / f"{split}_{spectrum}_{trial}.txt", regdb_lines(spectrum, labels), "\r\n")
    return root


def test_regdb_train_is_visible_then_thermal_with_folder_ids(root):
    dataset = RegDB(make_regdb(root))
    assert dataset.name == "regdb" and dataset.trial == 1
    assert [(r.pid, r.camid, r.modality) for r in dataset.train] == (
        [(116, 1, "vis")] * 2 + [(7, 1, "vis")] * 2 + [(116, 2, "ir")] * 2 + [(7, 2, "ir")] * 2)
    assert dataset.train[0].path == str(root / "Visible" / "116" / "male_back_v_11600_116.bmp")


def test_regdb_test_split_directions(root):
    dataset = RegDB(make_regdb(root))
    query, gallery = dataset.test_split(direction="v2t")
    assert [r.pid for r in query] == [40, 40, 3, 3, 9, 9]
    assert {(r.camid, r.modality) for r in query} == {(1, "vis")}
    assert {(r.camid, r.modality) for r in gallery} == {(2, "ir")}
    assert dataset.test_split(direction="t2v") == (gallery, query)


def test_regdb_reads_the_files_of_its_trial(root):
    make_regdb(root, trial=1)
    make_regdb(root, trial=7, train={5: 0, 6: 1, 8: 2})
    assert {record.pid for record in RegDB(root, trial=7).train} == {5, 6, 8}


@pytest.mark.parametrize("third_line", ["Visible/116/c.bmp 1", "Visible/9/c.bmp 0"],
                         ids=["folder with two labels", "label on two folders"])
def test_regdb_rejects_labels_inconsistent_with_folders(root, third_line):
    make_regdb(root)
    index_file = root / "idx" / "train_visible_1.txt"
    write_index(index_file, ["Visible/116/a.bmp 0", "Visible/7/b.bmp 1", third_line])
    with pytest.raises(DatasetLayoutError, match=at_line(index_file, 3)):
        RegDB(root)


@pytest.mark.parametrize("bad_line", ["Visible/5/a.bmp", "Visible/5/a.bmp zero", "Visible/five/a.bmp 0"])
def test_regdb_malformed_line_names_file_and_line(root, bad_line):
    make_regdb(root)
    index_file = root / "idx" / "test_thermal_1.txt"
    write_index(index_file, ["Thermal/4/x.bmp 0", "", bad_line])
    with pytest.raises(DatasetLayoutError, match=at_line(index_file, 3)):
        RegDB(root)


def test_regdb_skips_blank_lines(root):
    make_regdb(root)
    write_index(root / "idx" / "train_thermal_1.txt", ["", "Thermal/4/x.bmp 0", "  ", "Thermal/4/y.bmp 0", ""])
    assert [r.path for r in RegDB(root).train if r.modality == "ir"] == [
        str(root / "Thermal" / "4" / "x.bmp"), str(root / "Thermal" / "4" / "y.bmp")]


@pytest.mark.parametrize("trial", [0, 11, "1", 1.0])
def test_regdb_rejects_invalid_trial(root, trial):
    with pytest.raises(ValueError, match="trial"):
        RegDB(make_regdb(root), trial=trial)


def test_regdb_rejects_invalid_direction(root):
    with pytest.raises(ValueError, match="'i2v'"):
        RegDB(make_regdb(root)).test_split(direction="i2v")


def test_regdb_missing_index_file_or_root_names_it(root):
    make_regdb(root)
    (root / "idx" / "test_visible_1.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=named(root / "idx" / "test_visible_1.txt")):
        RegDB(root)
    with pytest.raises(DatasetLayoutError, match=named(root / "absent")):
        RegDB(root / "absent")


# ---------------------------------------------------------------- LLCM


def llcm_name(pid: int, camid: int, frame: int, spectrum: str) -> str:
    return f"{pid:04d}_c{camid:02d}_s200519_f{frame}_{spectrum}.jpg"


def make_llcm(root: Path, vis: dict[tuple[int, int], int], nir: dict[tuple[int, int], int],
              test_ids: str = "0012,0005") -> Path:
    """LLCM index files for two training ids, and test folders: vis / nir map (camera, pid) to a file count."""
    for spectrum, cameras in (("vis", (3, 1)), ("nir", (6, 6))):
        lines = [f"{spectrum}/{pid:04d}/{llcm_name(pid, camid, 10 + pid, spectrum)} {label}"
                 for label, (pid, camid) in enumerate(zip((250, 3), cameras))]
        write_index(root / "idx" / f"train_{spectrum}.txt", lines)
    (root / "idx" / "test_id.txt").write_text(test_ids)
    for spectrum, images in (("vis", vis), ("nir", nir)):
        (root / f"test_{spectrum}").mkdir(parents=True, exist_ok=True)
        for (camid, pid), count in images.items():
            names = [llcm_name(pid, camid, frame, spectrum) for frame in range(count)]
            touch_images(root / f"test_{spectrum}" / f"cam{camid}" / f"{pid:04d}", names)
    return root


LLCM_VIS = {(1, 5): 2, (3, 5): 2, (9, 12): 3, (4, 99): 1}
LLCM_NIR = {(3, 5): 2, (6, 5): 4, (1, 12): 1, (2, 12): 2}


def test_llcm_train_ids_and_cameras_come_from_paths(root):
    dataset = LLCM(make_llcm(root, LLCM_VIS, LLCM_NIR))
    assert dataset.name == "llcm"
    assert [(r.pid, r.camid, r.modality) for r in dataset.train] == [
        (250, 3, "vis"), (3, 1, "vis"), (250, 6, "ir"), (3, 6, "ir")]
    assert dataset.train[0].path == str(root / "vis" / "0250" / "0250_c03_s200519_f260_vis.jpg")
    assert dataset.test_ids == [5, 12]


def test_llcm_camid_from_name():
    assert camid_from_name("vis/0250/0250_c03_s200519_f13770_vis.jpg") == 3
    assert camid_from_name("nir/0007/0007_c12_s1_f2_nir.jpg") == 12
    with pytest.raises(ValueError, match="c03"):
        camid_from_name("c03_dir/0007/0007_s1_f2_nir.jpg")


def test_llcm_name_without_camera_names_file_and_line(root):
    make_llcm(root, LLCM_VIS, LLCM_NIR)
    index_file = root / "idx" / "train_nir.txt"
    write_index(index_file, ["nir/0250/0250_c06_s1_f1_nir.jpg 0", "nir/0250/0250_s1_f2_nir.jpg 0"])
    with pytest.raises(DatasetLayoutError, match=at_line(index_file, 2)):
        LLCM(root)


def test_llcm_visible_to_infrared_split(root):
    dataset = LLCM(make_llcm(root, LLCM_VIS, LLCM_NIR))
    query, gallery = dataset.test_split(direction="v2i")
    assert folder_pairs(query) == [(5, 1)] * 2 + [(5, 3)] * 2 + [(12, 9)] * 3
    assert {record.modality for record in query} == {"vis"}
    assert folder_pairs(gallery) == [(5, 6), (12, 1), (12, 2)]  # no near-infrared camera 3
    assert {record.modality for record in gallery} == {"ir"}


def test_llcm_infrared_to_visible_split(root):
    dataset = LLCM(make_llcm(root, LLCM_VIS, LLCM_NIR))
    query, gallery = dataset.test_split(direction="i2v")
    assert folder_pairs(query) == [(5, 6)] * 4 + [(12, 1), (12, 2), (12, 2)]  # no near-infrared camera 3
    assert {record.modality for record in query} == {"ir"}
    assert folder_pairs(gallery) == [(5, 1), (5, 3), (12, 9)]
    assert {record.modality for record in gallery} == {"vis"}


def test_llcm_gallery_reproduces_the_reference_draws(root):
    images = {(camid, pid): 1 + (pid + camid) % 4 for pid in (5, 12) for camid in range(1, 10)}
    dataset = LLCM(make_llcm(root, images, images))
    nir_cameras = [f"test_nir/cam{k}" for k in (1, 2, 4, 5, 6, 7, 8, 9)]
    vis_cameras = [f"test_vis/cam{k}" for k in range(1, 10)]
    for trial in (0, 1, 9):
        _, v2i_gallery = dataset.test_split(direction="v2i", trial=trial)
        _, i2v_gallery = dataset.test_split(direction="i2v", trial=trial)
        assert [r.path for r in v2i_gallery] == reference_gallery(root, [12, 5], nir_cameras, trial)
        assert [r.path for r in i2v_gallery] == reference_gallery(root, [12, 5], vis_cameras, trial)


def test_llcm_missing_test_folder_names_it(root):
    dataset = LLCM(make_llcm(root, LLCM_VIS, {}))
    os.rmdir(root / "test_nir")
    with pytest.raises(DatasetLayoutError, match=named(root / "test_nir")):
        dataset.test_split()


def test_llcm_missing_index_file_names_it(root):
    make_llcm(root, LLCM_VIS, LLCM_NIR)
    (root / "idx" / "test_id.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=named(root / "idx" / "test_id.txt")):
        LLCM(root)


@pytest.mark.parametrize("protocol", [{"direction": "v2t"}, {"trial": None}])
def test_llcm_rejects_invalid_protocol(root, protocol):
    with pytest.raises(ValueError):
        LLCM(make_llcm(root, LLCM_VIS, LLCM_NIR)).test_split(**protocol)


# ---------------------------------------------------------------- load_dataset


def test_load_dataset_dispatches_to_the_loaders(tmp_path):
    sysu = load_dataset("SYSU-MM01", make_sysu(tmp_path / "sysu", every_camera([1], 1)))
    regdb = load_dataset("regdb", make_regdb(tmp_path / "regdb", trial=4), trial=4)
    llcm = load_dataset("llcm", make_llcm(tmp_path / "llcm", LLCM_VIS, LLCM_NIR))
    assert (type(sysu), type(regdb), type(llcm)) == (SYSUMM01, RegDB, LLCM)
    assert regdb.trial == 4
    with pytest.raises(ValueError, match="did you mean 'llcm'"):
        load_dataset("llcmm", tmp_path)
