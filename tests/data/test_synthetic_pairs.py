"""The synthetic generator's ground truth for translation: counterpart cameras, `render_counterpart`, and the
registered pairs under ROOT/paired (val and test ids only, never read by the loader, resumed, version 3)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion

from reid.data import load_dataset, make_synthetic_sysu
from reid.data.synthetic import (
    CAMERAS,
    INFRARED_CAMERA_OF_SETTING,
    MIRRORED_VISIBLE_CAMERA,
    body_geometry,
    counterpart_camera,
    identity_rng,
    render_counterpart,
    render_infrared,
    render_visible,
    sample_identity,
    sample_view,
    scene_background,
    view_rng,
)
from reid.data.synthetic.identity import luminance
from reid.data.synthetic.writer import FORMAT_VERSION, check_synthetic_options

TINY = dict(num_ids=6, seed=3, images_per_camera=1, height=64, width=32)
HEIGHT, WIDTH = 64, 32
SENSOR_FIELDS = ("gain", "offset", "noise", "column_noise", "blur", "shading")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("pairs") / "sysu"
    return root, make_synthetic_sysu(root, **TINY)


def channel_spread(path: Path) -> float:
    """Mean absolute difference of each channel from the pixel's channel mean (0 for a grey image)."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return float(np.abs(pixels - pixels.mean(axis=2, keepdims=True)).mean())


def pair_files(root: Path) -> dict[str, set[str]]:
    return {side: {p.name for p in (root / "paired" / side).iterdir()} for side in ("vis", "ir")}


def expected_names(root: Path, pids: list[int]) -> set[str]:
    """cam<c>_<pid>_<n>.jpg of every image of `pids` in the tree."""
    return {f"{p.parts[-3]}_{p.parts[-2]}_{p.name}" for pid in pids for p in root.glob(f"cam*/{pid:04d}/*.jpg")}


def view_of(pid: int, camid: int = 1, index: int = 1, seed: int = 0):
    return sample_identity(identity_rng(seed, pid)), sample_view(view_rng(seed, pid, camid, index))


# ---------------------------------------------------------------------------------------------- counterpart cameras


@pytest.mark.parametrize("camid", [1, 2, 4, 5])
def test_infrared_counterpart_keeps_the_scene_in_luminance_grey_with_the_setting_s_infrared_sensor(camid):
    camera, counterpart = CAMERAS[camid], counterpart_camera(camid)
    sensor = CAMERAS[INFRARED_CAMERA_OF_SETTING[camera.outdoor]]
    assert sensor.camid == (6 if camera.outdoor else 3) and counterpart.modality == "ir"
    assert {f: getattr(counterpart, f) for f in SENSOR_FIELDS} == {f: getattr(sensor, f) for f in SENSOR_FIELDS}
    assert [(b.bottom, b.texture, b.contrast) for b in counterpart.bands] == \
        [(b.bottom, b.texture, b.contrast) for b in camera.bands]
    mirrored = CAMERAS[MIRRORED_VISIBLE_CAMERA[sensor.camid]]
    scale = np.mean([b.value[0] for b in sensor.bands]) / np.mean([luminance(b.value) for b in mirrored.bands])
    for band, grey in zip(camera.bands, counterpart.bands):
        assert grey.value == pytest.approx((scale * luminance(band.value),), abs=1e-6)
    assert counterpart.occluder == pytest.approx((scale * luminance(camera.occluder),), abs=1e-6)
    # the same texture field: the counterpart's background is the scaled luminance of the visible one
    _, view = view_of(2, camid)
    colour = scene_background(camera, view, HEIGHT, WIDTH, np.random.default_rng(view.noise_seed))
    grey = scene_background(counterpart, view, HEIGHT, WIDTH, np.random.default_rng(view.noise_seed))
    assert grey.shape == (HEIGHT, WIDTH, 1)
    np.testing.assert_allclose(grey[..., 0], scale * (colour @ np.array([0.299, 0.587, 0.114])), atol=1e-5)


@pytest.mark.parametrize("camid, mirrored", [(3, 1), (6, 4)])
def test_visible_counterpart_colours_the_scene_as_the_camera_it_mirrors(camid, mirrored):
    camera, counterpart, visible = CAMERAS[camid], counterpart_camera(camid), CAMERAS[mirrored]
    assert MIRRORED_VISIBLE_CAMERA[camid] == mirrored and counterpart.modality == "vis"
    assert {f: getattr(counterpart, f) for f in SENSOR_FIELDS} == {f: getattr(visible, f) for f in SENSOR_FIELDS}
    assert [(b.bottom, b.texture, b.contrast) for b in counterpart.bands] == \
        [(b.bottom, b.texture, b.contrast) for b in camera.bands]
    assert [b.value for b in counterpart.bands] == [b.value for b in visible.bands]
    assert counterpart.occluder == visible.occluder
    _, view = view_of(3, camid)
    grey = scene_background(camera, view, HEIGHT, WIDTH, np.random.default_rng(view.noise_seed))[..., 0]
    colour = scene_background(counterpart, view, HEIGHT, WIDTH, np.random.default_rng(view.noise_seed))
    top = 0.0
    for index, (band, coloured) in enumerate(zip(camera.bands, counterpart.bands)):  # rows well inside each band
        bottom = HEIGHT if index == len(camera.bands) - 1 else (band.bottom + view.horizon_shift) * HEIGHT
        rows = slice(int(np.ceil(top)) + 1, int(np.floor(bottom)) - 1)
        shade = grey[rows] / band.value[0]  # the same bands, boundaries and texture field, in colour
        np.testing.assert_allclose(colour[rows], shade[..., None] * np.asarray(coloured.value), rtol=1e-5, atol=1e-6)
        top = bottom


# ---------------------------------------------------------------------------------------------- rendered counterparts


@pytest.mark.parametrize("camid, other", [(1, 3), (2, 3), (4, 6), (5, 6), (3, 1), (6, 4)])
def test_counterpart_shows_the_same_person_as_the_other_modality_s_camera(camid, other):
    """On the person (away from its outline), the counterpart of an image is what the infrared (visible) camera of
    the setting renders of the same person and view: same geometry, palette and sensor. Where the scene draws
    the same textures as that camera (all but cam 5), the noise matches too: equal up to 1 grey level."""
    for pid in (1, 2):
        person, view = view_of(pid, camid)
        geometry = body_geometry(person, view, HEIGHT, WIDTH)
        core = binary_erosion(geometry.background < 0.01, iterations=2)
        assert core.sum() > 100
        counterpart = render_counterpart(person, view, camid, HEIGHT, WIDTH).astype(np.float64)
        render = render_infrared if CAMERAS[camid].modality == "vis" else render_visible
        reference = render(person, view, other, HEIGHT, WIDTH).astype(np.float64)
        difference = np.abs(counterpart - reference)[core]
        if camid == 5:  # bricks and flat draw other random numbers than cam 6's sky, foliage and tiles
            assert difference.mean() < 10.0 and abs(counterpart[core].mean() - reference[core].mean()) < 2.0
        else:
            assert difference.max() <= 1.0
        assert np.abs(counterpart - reference)[geometry.background > 0.99].mean() > 2.0  # another scene


def test_counterpart_is_a_pure_function_of_its_key():
    person, view = view_of(4, 2, 3)
    first = render_counterpart(person, view, 2, HEIGHT, WIDTH)
    render_counterpart(*view_of(5, 6), 6, HEIGHT, WIDTH)  # another key in between changes nothing
    assert np.array_equal(first, render_counterpart(person, view, 2, HEIGHT, WIDTH))
    with pytest.raises(ValueError, match="camera"):
        render_counterpart(person, view, 7, HEIGHT, WIDTH)


# ---------------------------------------------------------------------------------------------- the pairs on disk


def test_pairs_cover_every_val_and_test_image_and_no_training_id(tree):
    root, summary = tree
    names = pair_files(root)
    assert names["vis"] == names["ir"]  # registered: the same names on both sides
    held_out = summary["val_ids"] + summary["test_ids"]
    assert summary["val_ids"] and summary["train_ids"]
    assert names["vis"] == expected_names(root, held_out)
    assert summary["pairs"] == len(names["vis"]) == sum(len(list(root.glob(f"cam*/{pid:04d}/*.jpg")))
                                                          for pid in held_out)
    assert not {int(name.split("_")[1]) for name in names["vis"]} & set(summary["train_ids"])
    assert json.loads((root / "synthetic.json").read_text())["version"] == FORMAT_VERSION == 3


def test_each_pair_is_the_image_and_its_rendered_other_modality(tree):
    root, _ = tree
    for path in sorted((root / "paired" / "vis").iterdir()):
        camera, pid, index = path.stem.split("_")
        image = root / camera / pid / f"{index}.jpg"
        own = CAMERAS[int(camera[3:])].modality
        other = "ir" if own == "vis" else "vis"
        assert (root / "paired" / own / path.name).read_bytes() == image.read_bytes()
        with Image.open(root / "paired" / other / path.name) as partner:
            assert partner.format == "JPEG" and partner.size == (WIDTH, HEIGHT)
        spread = channel_spread(root / "paired" / other / path.name)
        assert spread < 1.5 if other == "ir" else spread > 4.0, path.name


def test_pairs_are_byte_identical_for_a_seed(tree, tmp_path):
    root, _ = tree
    again = tmp_path / "again"
    make_synthetic_sysu(again, **TINY)
    for side in ("vis", "ir"):
        files = sorted((root / "paired" / side).iterdir())
        assert [p.name for p in files] == sorted(p.name for p in (again / "paired" / side).iterdir())
        assert all(p.read_bytes() == (again / "paired" / side / p.name).read_bytes() for p in files)


def test_the_loader_never_lists_a_pair(tree):
    root, _ = tree
    for evaluate_on in ("test", "val"):
        dataset = load_dataset("synthetic", root, evaluate_on=evaluate_on)
        query, gallery = dataset.test_split()
        paths = [r.path for r in [*dataset.train, *dataset.test_images(), *query, *gallery]]
        assert paths and not [path for path in paths if "paired" in Path(path).parts]


def test_resume_writes_the_missing_pairs_only(tmp_path):
    root = tmp_path / "sysu"
    make_synthetic_sysu(root, **TINY)
    files = sorted(root.glob("paired/*/*.jpg"))
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in files}
    marker = root / "synthetic.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    removed = files[::4]
    for path in removed:
        path.unlink()
    stray = root / "paired" / "ir" / ".cam1_0001_0001.jpg.abc.tmp"
    stray.write_bytes(b"half")
    summary = make_synthetic_sysu(root, **TINY)
    assert summary["pairs_written"] == len(removed) and summary["written"] == 0
    assert {path: path.read_bytes() for path in files} == {path: data for path, (_, data) in before.items()}
    assert all(path.stat().st_mtime_ns == before[path][0] for path in files if path not in removed)
    assert not stray.exists() and json.loads(marker.read_text())["complete"] is True
    assert make_synthetic_sysu(root, **TINY)["pairs_written"] == 0


def test_a_version_2_tree_is_upgraded_in_place_keeping_its_images(tree, tmp_path):
    """Version 2 wrote the same images without paired/: its tree gets the pairs, its images stay untouched."""
    root, _ = tree
    old = tmp_path / "old"
    shutil.copytree(root, old)
    shutil.rmtree(old / "paired")
    recorded = json.loads((old / "synthetic.json").read_text())
    (old / "synthetic.json").write_text(json.dumps({**recorded, "version": 2}))
    images = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in old.glob("cam*/*/*.jpg")}
    summary = make_synthetic_sysu(old, **TINY)
    assert summary["written"] == 0 and summary["pairs_written"] == 2 * summary["pairs"] > 0
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in old.glob("cam*/*/*.jpg")} == images
    assert sorted(p.relative_to(old) for p in old.rglob("paired/*/*")) == \
        sorted(p.relative_to(root) for p in root.rglob("paired/*/*"))
    assert json.loads((old / "synthetic.json").read_text()) == {**recorded, "complete": True}


def marker_only_tree(tmp_path, recorded: dict, **changes) -> Path:
    """A folder holding only a synthetic.json: `recorded` with `changes`."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "synthetic.json").write_text(json.dumps({**recorded, **changes}))
    return old


def test_a_version_2_tree_of_other_parameters_is_refused(tree, tmp_path):
    recorded = json.loads((tree[0] / "synthetic.json").read_text())
    old = marker_only_tree(tmp_path, recorded, version=2, seed=recorded["seed"] + 1)
    with pytest.raises(ValueError, match=r"synthetic\.json.*version: 2 there, 3 asked.*seed.*delete this one"):
        make_synthetic_sysu(old, **TINY)


def test_a_version_1_tree_is_refused(tree, tmp_path):
    recorded = json.loads((tree[0] / "synthetic.json").read_text())
    old = marker_only_tree(tmp_path, recorded, version=1)
    with pytest.raises(ValueError, match=r"synthetic\.json.*version: 1 there, 3 asked.*delete this one"):
        make_synthetic_sysu(old, **TINY)


def test_a_version_2_tree_given_to_a_trainer_names_the_upgrade(tree, tmp_path):
    recorded = json.loads((tree[0] / "synthetic.json").read_text())
    old = marker_only_tree(tmp_path, recorded, version=2)
    with pytest.raises(ValueError, match=r"generator version 2 .*upgrade it in place with `vireid data synth --root"):
        check_synthetic_options(old, {"seed": recorded["seed"], "num_ids": recorded["num_ids"]})
