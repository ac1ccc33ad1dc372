"""The synthetic SYSU-MM01-layout generator: layout, determinism, modalities, resume and refusal."""
from __future__ import annotations

import json
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.data import load_dataset, make_synthetic_sysu
from reid.data.synthetic import (
    CAMERAS,
    PersonIdentity,
    PersonView,
    body_geometry,
    identity_rng,
    render_contact_sheet,
    render_infrared,
    render_visible,
    sample_identity,
    sample_view,
    split_ids,
    view_rng,
)

TINY = dict(num_ids=6, seed=3, images_per_camera=2, height=64, width=32)
HEIGHT, WIDTH = 128, 64


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny generated tree and its summary, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("synthetic") / "sysu"
    return root, make_synthetic_sysu(root, **TINY)


def read_ids(path: Path) -> list[int]:
    """The ids of a one-line comma-separated id file ([] for an empty line)."""
    line = path.read_text().strip()
    return [int(token) for token in line.split(",")] if line else []


def images(root: Path) -> list[Path]:
    """Every image of a tree, sorted."""
    return sorted(root.glob("cam*/*/*.jpg"))


def front_view(seed: int = 0) -> PersonView:
    """A sampled view turned to face the camera, without occluder."""
    return replace(sample_view(np.random.default_rng(seed)), facing_back=False, occluder=None)


def identity(pid: int, seed: int = 0) -> PersonIdentity:
    """Identity `pid` of the tree generated with `seed`."""
    return sample_identity(identity_rng(seed, pid))


def as_float(image: np.ndarray) -> np.ndarray:
    """[H, W, C] uint8 -> float64, so differences do not wrap around."""
    return image.astype(np.float64)


def test_layout_and_id_files(tree):
    root, summary = tree
    ids = {name: read_ids(root / "exp" / f"{name}_id.txt") for name in ("train", "val", "test", "available")}
    assert all(len((root / "exp" / f"{name}_id.txt").read_text().splitlines()) == 1 for name in ids)
    assert ids["available"] == list(range(1, TINY["num_ids"] + 1))
    assert ids["train"] and ids["val"] and ids["test"]
    splits = [set(ids[name]) for name in ("train", "val", "test")]
    assert sum(map(len, splits)) == TINY["num_ids"] and set().union(*splits) == set(ids["available"])
    assert (summary["train_ids"], summary["val_ids"], summary["test_ids"]) == (ids["train"], ids["val"], ids["test"])
    counts = []
    for camid in range(1, 7):
        for pid in ids["available"]:
            names = sorted(p.name for p in (root / f"cam{camid}" / f"{pid:04d}").iterdir())
            assert names == [f"{n:04d}.jpg" for n in range(1, len(names) + 1)]
            counts.append(len(names))
    assert min(counts) >= 1 and max(counts) <= TINY["images_per_camera"] + 1 and len(set(counts)) > 1
    files = images(root)
    assert len(files) == summary["total_images"] == sum(summary["images_per_camera"].values())
    for path in files[::7]:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == (TINY["width"], TINY["height"])


def test_splits_of_default_and_tiny_trees(tmp_path):
    default = split_ids(60, seed=0, test_fraction=0.3, val_fraction=0.1)
    assert [len(default[name]) for name in ("train", "val", "test")] == [36, 6, 18]
    summary = make_synthetic_sysu(tmp_path / "two", num_ids=2, images_per_camera=1, height=32, width=16)
    assert len(summary["train_ids"]) == len(summary["test_ids"]) == 1 and summary["val_ids"] == []
    assert (tmp_path / "two" / "exp" / "val_id.txt").read_text() == "\n"


def test_the_sysu_loader_reads_the_tree(tree):
    root, summary = tree
    dataset = load_dataset("synthetic", root)
    assert sorted({record.pid for record in dataset.train}) == sorted(summary["train_ids"] + summary["val_ids"])
    assert {record.modality for record in dataset.train if record.camid in (3, 6)} == {"ir"}
    query, gallery = dataset.test_split()
    assert {record.pid for record in query} == set(summary["test_ids"])


def test_same_seed_same_bytes_other_seed_other_people(tree, tmp_path):
    root, _ = tree
    again = make_synthetic_sysu(tmp_path / "again", **TINY)
    other = make_synthetic_sysu(tmp_path / "other", **{**TINY, "seed": TINY["seed"] + 1})
    relative = [path.relative_to(root) for path in images(root)]
    assert [p.relative_to(again["root"]) for p in images(Path(again["root"]))] == relative
    assert all((root / rel).read_bytes() == (Path(again["root"]) / rel).read_bytes() for rel in relative)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(sorted((root / "exp").iterdir()),
                                                               sorted((Path(again["root"]) / "exp").iterdir())))
    first = [rel for rel in relative if rel.name == "0001.jpg"]
    assert all((root / rel).read_bytes() != (Path(other["root"]) / rel).read_bytes() for rel in first)
    assert identity(1, seed=0) != identity(1, seed=1)


def test_infrared_images_are_grey_and_visible_ones_coloured(tree):
    root, _ = tree
    for camid, spec in CAMERAS.items():
        for path in sorted(root.glob(f"cam{camid}/*/*.jpg"))[:4]:
            pixels = as_float(np.asarray(Image.open(path)))
            channel_spread = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).mean()
            if spec.modality == "ir":
                assert channel_spread < 1.5, path
            else:
                assert channel_spread > 4.0, path


def rotate_hue(rgb: tuple, angle: float) -> tuple:
    """The colour with its chroma rotated by `angle` in YIQ space: another hue of exactly the same luma."""
    y, i, q = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]) @ np.array(rgb)
    c, s = np.cos(angle), np.sin(angle)
    yiq = np.array([y, 0.25 * (c * i - s * q), 0.25 * (s * i + c * q)])  # less chroma: stays inside [0, 1]
    return tuple(float(v) for v in np.linalg.solve(np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                                                             [0.211, -0.523, 0.312]]), yiq))


def test_hue_is_invisible_in_infrared_and_luminance_carries_over():
    person, view = identity(5), front_view(1)
    colour_fields = [f.name for f in fields(PersonIdentity) if f.name.endswith("_rgb")]
    recoloured = replace(person, **{name: rotate_hue(getattr(person, name), 2.0) for name in colour_fields})
    for camid in (3, 6):  # other hues of the same luma: the same infrared image, up to rounding
        difference = np.abs(as_float(render_infrared(person, view, camid, HEIGHT, WIDTH))
                            - as_float(render_infrared(recoloured, view, camid, HEIGHT, WIDTH)))
        assert difference.max() <= 1.0
    for camid in (1, 4):
        difference = np.abs(as_float(render_visible(person, view, camid, HEIGHT, WIDTH))
                            - as_float(render_visible(recoloured, view, camid, HEIGHT, WIDTH)))
        assert difference.mean() > 5.0
    plain = replace(person, top_pattern="solid", emblem="none", accessory="none")
    torso = body_geometry(plain, view, HEIGHT, WIDTH).parts["torso"] > 0.9
    grey = {value: as_float(render_infrared(replace(plain, top_rgb=(value,) * 3), view, 3, HEIGHT, WIDTH))[..., 0]
            for value in (0.1, 0.9)}
    assert grey[0.9][torso].mean() > grey[0.1][torso].mean() + 20.0  # luminance carries over, in grey


def test_shape_pattern_and_accessories_show_in_infrared():
    view = front_view(2)
    base = replace(identity(1), top_pattern="solid", accessory="none", sleeves="long", bottom_style="trousers")
    striped = replace(base, top_pattern="hstripes")  # the sampled pattern colour and emissivity
    torso = body_geometry(base, view, HEIGHT, WIDTH).parts["torso"] > 0.9
    infrared = {name: as_float(render_infrared(person, view, 3, HEIGHT, WIDTH)[..., 0])
                for name, person in [("base", base), ("striped", striped)]}
    assert infrared["striped"][torso].std() > infrared["base"][torso].std() + 8.0

    with_backpack = replace(base, accessory="backpack")
    pack = body_geometry(with_backpack, view, HEIGHT, WIDTH).materials["accessory"] > 0.9
    difference = np.abs(as_float(render_infrared(with_backpack, view, 3, HEIGHT, WIDTH)[..., 0]) - infrared["base"])
    assert pack.sum() > 20 and difference[pack].mean() > 15.0

    reshaped = replace(base, shoulder_width=base.shoulder_width * 1.3, sleeves="short", bottom_style="shorts")
    assert np.abs(as_float(render_infrared(reshaped, view, 3, HEIGHT, WIDTH)[..., 0]) - infrared["base"]).mean() > 5.0

    pairs = [(identity(pid), identity(pid + 1)) for pid in range(1, 16, 2)]
    differences = [np.abs(as_float(render_infrared(a, view, 6, HEIGHT, WIDTH))
                          - as_float(render_infrared(b, view, 6, HEIGHT, WIDTH))).mean() for a, b in pairs]
    assert np.mean(differences) > 5.0


def test_skin_is_warmer_than_background_and_accessories_in_infrared():
    person, view = replace(identity(4), accessory="backpack"), front_view(3)
    geometry = body_geometry(person, view, HEIGHT, WIDTH)
    for camid in (3, 6):
        grey = as_float(render_infrared(person, view, camid, HEIGHT, WIDTH, geometry=geometry)[..., 0])
        head = grey[geometry.parts["head"] > 0.9].mean()
        background = grey[geometry.background > 0.99].mean()
        backpack = grey[geometry.parts["backpack"] > 0.9].mean()
        assert head > background + 60.0
        assert head > backpack + 40.0


def test_second_call_returns_at_once_and_a_killed_run_resumes(tmp_path):
    root = tmp_path / "sysu"
    make_synthetic_sysu(root, **TINY)
    files = images(root)
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in files}
    start = time.perf_counter()
    summary = make_synthetic_sysu(root, **TINY)
    assert time.perf_counter() - start < 1.0 and summary["written"] == 0
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in files} == before

    marker = root / "synthetic.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    for path in files[::5]:
        path.unlink()
    (files[1].parent / ".0009.jpg.abc.tmp").write_bytes(b"half")
    summary = make_synthetic_sysu(root, **TINY)
    assert summary["written"] == len(files[::5])
    assert {path: path.read_bytes() for path in files} == {path: data for path, (_, data) in before.items()}
    assert all(path.stat().st_mtime_ns == before[path][0] for path in files if path not in files[::5])
    assert json.loads(marker.read_text())["complete"] is True
    assert not list(root.glob("cam*/*/.*.tmp"))


def test_refuses_other_parameters_and_foreign_folders(tree, tmp_path):
    root, _ = tree
    with pytest.raises(ValueError, match=r"synthetic\.json.*seed"):
        make_synthetic_sysu(root, **{**TINY, "seed": TINY["seed"] + 1})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a synthetic tree")
    with pytest.raises(ValueError, match="synthetic.json"):
        make_synthetic_sysu(foreign, **TINY)
    with pytest.raises(ValueError, match="num_ids"):
        make_synthetic_sysu(tmp_path / "too_small", num_ids=1)


def test_views_of_one_identity_differ():
    person = identity(1)
    renders = [render_visible(person, sample_view(view_rng(0, 1, 1, n)), 1, HEIGHT, WIDTH) for n in (1, 2, 3)]
    assert all(np.abs(as_float(a) - as_float(b)).mean() > 3.0 for a, b in zip(renders, renders[1:]))


def test_contact_sheet(tree, tmp_path):
    root, _ = tree
    sheet = render_contact_sheet(root, tmp_path / "sheet.png", num_ids=3)
    with Image.open(sheet) as image:
        width, height = image.size
    assert width > 3 * TINY["width"] and height > 6 * TINY["height"]
