"""The `folder` dataset (reid/data/folder.py): unlabelled footage ROOT/vis/... and ROOT/ir/..., any nesting, no ids."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.config import DataConfig
from reid.data import (DatasetLayoutError, FolderDataset, NoIdentitiesError, dataset_has_identities, dataset_names,
                       load_dataset, open_dataset)
from reid.data.folder import camera_ids
from reid.evaluation import evaluate_protocol


def write_image(path: Path, value: int = 128, grey: bool = False) -> Path:
    """A 16x8 image (JPEG or PNG by the suffix) of one flat colour."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((16, 8) if grey else (16, 8, 3), value, dtype=np.uint8)
    Image.fromarray(image).save(path)
    return path


def footage(root: Path) -> Path:
    """vis/: cam2 and cam10 (nested by day and hour), one loose image; ir/: flat, three images; plus what is not an
    image (a text file, a hidden file, a hidden folder)."""
    for relpath in ("vis/cam2/day1/08h/a.jpg", "vis/cam2/day1/09h/b.JPG", "vis/cam2/day2/c.png",
                    "vis/cam10/x.jpeg", "vis/cam10/deep/er/y.bmp", "vis/loose.jpg"):
        write_image(root / relpath, 200)
    for relpath in ("ir/f1.png", "ir/f2.jpg", "ir/f3.png"):
        write_image(root / relpath, 60, grey=True)
    (root / "vis" / "cam2" / "notes.txt").write_text("not an image")
    write_image(root / "vis" / "cam2" / ".hidden.jpg")
    write_image(root / "ir" / ".thumbs" / "t.jpg")
    return root


def relative(dataset: FolderDataset) -> list[tuple[str, int, int, str]]:
    return [(Path(r.path).relative_to(dataset.root).as_posix(), r.pid, r.camid, r.modality) for r in dataset.train]


def test_records_cameras_and_modalities_of_a_nested_tree(tmp_path):
    dataset = load_dataset("folder", footage(tmp_path / "footage"))
    assert isinstance(dataset, FolderDataset) and dataset.has_identities is False and dataset.name == "folder"
    # visible first, each modality sorted by path; one camera per first-level folder (natural order: cam2 before
    # cam10), the loose images of vis/ one more (first), flat ir/ one camera; ids 1.. vis then ir; no identities
    assert dataset.cameras == {"vis": 1, "vis/cam2": 2, "vis/cam10": 3, "ir": 4}
    assert relative(dataset) == [
        ("vis/cam10/deep/er/y.bmp", -1, 3, "vis"), ("vis/cam10/x.jpeg", -1, 3, "vis"),
        ("vis/cam2/day1/08h/a.jpg", -1, 2, "vis"), ("vis/cam2/day1/09h/b.JPG", -1, 2, "vis"),
        ("vis/cam2/day2/c.png", -1, 2, "vis"), ("vis/loose.jpg", -1, 1, "vis"),
        ("ir/f1.png", -1, 4, "ir"), ("ir/f2.jpg", -1, 4, "ir"), ("ir/f3.png", -1, 4, "ir")]
    assert all(os.path.isabs(r.path) and Path(r.path).is_file() for r in dataset.train)
    assert dataset.test_images() == []
    summary = dataset.summary()
    assert summary["images"] == {"vis": 6, "ir": 3} and summary["ids"] is None
    assert summary["cameras"] == {1: 1, 2: 3, 3: 2, 4: 3}


def test_cam_k_folders_keep_their_numbers_when_distinct_across_modalities(tmp_path):
    for relpath in ("vis/cam1/p/a.jpg", "vis/Camera_04/b.jpg", "ir/cam3/c.png", "ir/cam6/d/e/f.png"):
        write_image(tmp_path / relpath)
    dataset = load_dataset("folder", tmp_path)
    assert dataset.cameras == {"vis/cam1": 1, "vis/Camera_04": 4, "ir/cam3": 3, "ir/cam6": 6}
    assert [(Path(r.path).name, r.camid) for r in dataset.train] == [("b.jpg", 4), ("a.jpg", 1), ("c.png", 3),
                                                                     ("f.png", 6)]  # sorted by path


def test_camera_numbers_fall_back_to_one_id_per_folder_when_they_clash_or_are_not_cameras(tmp_path):
    # cam1 under both modalities: the numbers would merge two cameras, so each folder gets its own id
    assert camera_ids({"vis": ["cam1", "cam2"], "ir": ["cam1"]}) == {"vis/cam1": 1, "vis/cam2": 2, "ir/cam1": 3}
    # any first-level folder is a camera; the loose images are one more camera, listed first
    assert camera_ids({"vis": ["north gate", "", "door"], "ir": ["door"]}) == {
        "vis": 1, "vis/door": 2, "vis/north gate": 3, "ir/door": 4}
    # a modality without subfolders is one camera
    assert camera_ids({"vis": [""], "ir": [""]}) == {"vis": 1, "ir": 2}


@pytest.mark.parametrize("missing", ["vis", "ir"])
def test_a_missing_modality_folder_is_an_error_naming_it(tmp_path, missing):
    kept = "ir" if missing == "vis" else "vis"
    write_image(tmp_path / kept / "cam1" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match="folder dataset") as error:
        load_dataset("folder", tmp_path)
    assert str(tmp_path / missing) in str(error.value) and "does not exist" in str(error.value)


def test_a_modality_folder_without_images_is_an_error_naming_it(tmp_path):
    write_image(tmp_path / "ir" / "a.png")
    (tmp_path / "vis" / "cam1" / "empty").mkdir(parents=True)
    (tmp_path / "vis" / "cam1" / "readme.txt").write_text("no images here")
    write_image(tmp_path / "vis" / ".cache" / "hidden.jpg")  # hidden: not footage
    with pytest.raises(DatasetLayoutError, match="no visible images") as error:
        load_dataset("folder", tmp_path)
    assert str(tmp_path / "vis") in str(error.value)


def test_a_missing_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(DatasetLayoutError) as error:
        load_dataset("folder", tmp_path / "absent")
    assert str(tmp_path / "absent") in str(error.value)


def test_the_test_split_and_protocol_are_refused_naming_the_reason(tmp_path):
    dataset = load_dataset("folder", footage(tmp_path))
    with pytest.raises(NoIdentitiesError, match="data.name=folder has no identities"):
        dataset.test_split()
    with pytest.raises(ValueError):
        evaluate_protocol(lambda records: np.zeros((len(records), 4)), dataset)


def test_registry_and_config_entry_points(tmp_path, caplog):
    root = footage(tmp_path)
    assert "folder" in dataset_names()
    assert dataset_has_identities("folder") is False
    assert all(dataset_has_identities(name) for name in ("sysu", "regdb", "llcm", "synthetic"))
    with caplog.at_level(logging.INFO, logger="reid.data.folder"):
        dataset = open_dataset(DataConfig(name="folder", root=str(root)))
    assert len(dataset.train) == 9 and "no identities" in caplog.text
    with pytest.raises(ValueError, match="evaluate_on"):
        open_dataset(DataConfig(name="folder", root=str(root), evaluate_on="val"))


def test_symlinked_folders_are_followed_once(tmp_path):
    write_image(tmp_path / "elsewhere" / "cam7" / "a.jpg")
    write_image(tmp_path / "root" / "ir" / "b.png")
    (tmp_path / "root" / "vis").mkdir()
    os.symlink(tmp_path / "elsewhere" / "cam7", tmp_path / "root" / "vis" / "cam7")
    os.symlink(tmp_path / "root" / "vis", tmp_path / "root" / "vis" / "cam7" / "loop")  # a link loop
    dataset = load_dataset("folder", tmp_path / "root")
    assert relative(dataset) == [("vis/cam7/a.jpg", -1, 1, "vis"), ("ir/b.png", -1, 2, "ir")]
