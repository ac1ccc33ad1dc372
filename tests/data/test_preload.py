"""Preloaded images equal the test transform of the files; held-out val ids; synthetic options in configs."""
from __future__ import annotations

import pytest
import torch

from reid.config import DataConfig
from reid.data import load_dataset, make_synthetic_sysu, open_dataset, read_image
from reid.data.preload import PreloadedImages
from reid.data.transforms import build_test_transform
from reid.features import RecordImages


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("preload") / "synthetic"
    make_synthetic_sysu(root, num_ids=10, seed=2, images_per_camera=1, height=64, width=32, test_fraction=0.2,
                        val_fraction=0.3)
    return root


def test_preloaded_images_equal_the_test_transform_of_the_files(tree):
    records = load_dataset("synthetic", tree).train[:7]
    preloaded = PreloadedImages([r.path for r in records] * 2, 32, 16, progress=False)  # duplicates kept once
    assert len(preloaded) == 7 and preloaded.pixels.dtype == torch.uint8
    transform = build_test_transform(32, 16)
    for record in records:
        assert torch.allclose(preloaded.image(record.path), transform(read_image(record.path)), atol=1e-6)
    served = RecordImages(records, transform, preloaded)[3]
    assert torch.equal(served[0], preloaded.image(records[3].path)) and served[1] == (records[3].modality == "ir")
    with pytest.raises(KeyError, match="not preloaded"):
        preloaded.image(str(tree / "elsewhere.jpg"))


def test_evaluate_on_val_holds_the_val_ids_out(tree):
    full, held_out = load_dataset("synthetic", tree), load_dataset("synthetic", tree, evaluate_on="val")
    val_ids = [int(v) for v in (tree / "exp" / "val_id.txt").read_text().strip().split(",")]
    assert set(held_out.test_ids) == set(val_ids) and not set(val_ids) & set(held_out.train_ids)
    assert set(full.train_ids) == set(held_out.train_ids) | set(val_ids)
    query, gallery = held_out.test_split(mode="all", trial=0)
    assert {r.pid for r in query} <= set(val_ids) and {r.pid for r in gallery} <= set(val_ids)
    with pytest.raises(ValueError, match="evaluate_on"):
        load_dataset("synthetic", tree, evaluate_on="train")
    with pytest.raises(ValueError, match="only SYSU-MM01-layout"):
        open_dataset(DataConfig(name="regdb", root=str(tree), evaluate_on="val"))


def test_open_dataset_refuses_a_synthetic_tree_of_other_options(tree):
    assert open_dataset(DataConfig(name="synthetic", root=str(tree))).test_ids  # options unset: the tree as it is
    assert open_dataset(DataConfig(name="synthetic", root=str(tree), num_ids=10, seed=2)).test_ids
    with pytest.raises(ValueError, match="num_ids: 10 there, 12 asked; images_per_camera: 1 there, 4 asked"):
        open_dataset(DataConfig(name="synthetic", root=str(tree), num_ids=12, images_per_camera=4))


def test_a_tree_of_an_older_generator_version_is_refused(tmp_path):
    (tmp_path / "synthetic.json").write_text('{"version": 1, "num_ids": 60, "complete": true}')
    with pytest.raises(ValueError, match="version: 1 there, 3 asked"):
        open_dataset(DataConfig(name="synthetic", root=str(tmp_path)))
