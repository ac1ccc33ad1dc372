"""Render a "second world": a synthetic SYSU-MM01-layout tree that looks clearly different from the
toolkit's own synthetic generator (reid.data.synthetic), to check that a recipe tuned on the toolkit's
world is not tuned to its generator.

The toolkit's files are never changed: this script monkeypatches the generator's module attributes inside
its own process only, then calls the toolkit's `make_synthetic_sysu`, so layout (cam1..cam6/<pid>/<n>.jpg),
id split (exp/*_id.txt) and synthetic.json are exactly the toolkit's format. Bodies, poses, garment cuts,
patterns, chest prints and accessories are the toolkit's (same seeds); what differs is how they look:

  * clothing colours: hues snapped to 8 muted "fashion" hues (burgundy, rust, mustard, olive, teal,
    steel blue, navy, plum), saturation x0.6, value 0.1 + 0.8 v (washed-out, lower-contrast palette);
  * infrared: thermal-style garment grey, 65% fabric emissivity (drawn independently of colour) and 35%
    visible luminance instead of the toolkit's 30/70; other infrared gains/offsets, about 2x sensor noise,
    stronger fixed column pattern, a little more blur, warmer (brighter) infrared backgrounds with other textures;
  * visible cameras: other scenes (background colours, bands, textures), other white balance, mild
    optical blur, a little more noise, weaker part shading;
  * every camera: radial vignetting; JPEG quality 80 instead of 90;
  * no evaluation pairs (paired/): its infrared cameras do not mirror the layout of a visible camera.

docs/benchmark.md's second-world table: `python -m experiments.second_world --root data/world2`, then
`python -m experiments run experiments/configs/demo_methods.yaml data.name=sysu data.root=data/world2 seeds=1`.

Usage:
  python -m experiments.second_world --root ROOT [--num-ids 400] [--seed 11] [--images-per-camera 4]
                                     [--test-fraction 0.15] [--val-fraction 0.1]
  python -m experiments.second_world --sheet PATH [--seed 11]  # 8 ids x 6 cameras contact sheet only
"""
from __future__ import annotations

import argparse
import colorsys
import dataclasses
import functools
import sys
import tempfile
from pathlib import Path

import numpy as np

from reid.data import synthetic as synthetic_pkg
from reid.data.synthetic import identity as identity_mod
from reid.data.synthetic import render as render_mod
from reid.data.synthetic import scene as scene_mod
from reid.data.synthetic import writer as writer_mod
from reid.data.synthetic.scene import SceneBand

# ----------------------------------------------------------------------------------------------------------
# 1. Clothing colours: a different colour world (muted, hue-snapped). Applied to the identity itself, so the
#    infrared luminance term sees the same (new) colours.

_HUE_ANCHORS = (0.98, 0.05, 0.12, 0.22, 0.45, 0.56, 0.64, 0.80)  # burgundy rust mustard olive teal steel navy plum
_HUE_JITTER = 0.04
_SATURATION_SCALE = 0.6
_VALUE_FLOOR, _VALUE_SPAN = 0.10, 0.80
_RECOLOURED_FIELDS = ("top_rgb", "top_pattern_rgb", "bottom_rgb", "bottom_pattern_rgb", "accessory_rgb",
                      "emblem_rgb")


def _world2_colour(rgb):
    """Map a toolkit colour to the second world's palette (deterministic: keeps the identity's seeds)."""
    hue, sat, val = colorsys.rgb_to_hsv(*rgb)
    position = hue * len(_HUE_ANCHORS)
    anchor = _HUE_ANCHORS[int(position) % len(_HUE_ANCHORS)]
    new_hue = (anchor + _HUE_JITTER * (position - int(position) - 0.5)) % 1.0
    new = colorsys.hsv_to_rgb(new_hue, sat * _SATURATION_SCALE, _VALUE_FLOOR + _VALUE_SPAN * val)
    return tuple(round(float(c), 6) for c in new)


_toolkit_sample_identity = identity_mod.sample_identity


@functools.wraps(_toolkit_sample_identity)
def sample_identity_world2(rng):
    person = _toolkit_sample_identity(rng)
    return dataclasses.replace(person, **{f: _world2_colour(getattr(person, f)) for f in _RECOLOURED_FIELDS})


# ----------------------------------------------------------------------------------------------------------
# 2. Infrared: thermal-style garment grey, mostly emissivity (toolkit: 0.3).
_EMISSIVITY_SHARE = 0.65

# ----------------------------------------------------------------------------------------------------------
# 3. Cameras: other scenes and sensors (replaces every entry of scene.CAMERAS in place).
_VIS_INDOOR = dict(noise=0.020, column_noise=0.0, blur=0.55, shading=0.28)
_VIS_OUTDOOR = dict(noise=0.018, column_noise=0.0, blur=0.45, shading=0.30)
_IR_INDOOR = dict(noise=0.040, column_noise=0.022, blur=0.7, shading=0.12)
_IR_OUTDOOR = dict(noise=0.045, column_noise=0.028, blur=0.8, shading=0.12)

_CAMERA_CHANGES = {
    # indoor, cool fluorescent light: blue-grey wall, dark skirting band, dark floor tiles
    1: dict(bands=(SceneBand(0.50, (0.55, 0.60, 0.70), "panels", 0.12),
                   SceneBand(0.68, (0.36, 0.39, 0.46), "flat", 0.10),
                   SceneBand(1.0, (0.30, 0.28, 0.27), "tiles", 0.20)),
            occluder=(0.45, 0.48, 0.55), gain=(0.88, 0.98, 1.10), offset=0.01, **_VIS_INDOOR),
    # indoor, warm light: beige brick wall, brown wooden floor
    2: dict(bands=(SceneBand(0.60, (0.78, 0.70, 0.56), "bricks", 0.12),
                   SceneBand(1.0, (0.40, 0.28, 0.19), "tiles", 0.25)),
            occluder=(0.50, 0.36, 0.26), gain=(1.10, 0.97, 0.80), offset=0.0, **_VIS_INDOOR),
    # infrared indoor: warmer wall (bricks), flat floor, lower gain, higher offset
    3: dict(bands=(SceneBand(0.55, (0.22,), "bricks", 0.20), SceneBand(1.0, (0.27,), "flat", 0.15)),
            occluder=(0.24,), gain=(0.88,), offset=0.05, **_IR_INDOOR),
    # outdoor street, hazy sun: pale sky, sandstone buildings, dark asphalt
    4: dict(bands=(SceneBand(0.20, (0.80, 0.86, 0.93), "sky", 0.08),
                   SceneBand(0.52, (0.68, 0.60, 0.47), "panels", 0.22),
                   SceneBand(1.0, (0.28, 0.29, 0.31), "flat", 0.18)),
            occluder=(0.52, 0.46, 0.36), gain=(1.00, 1.00, 0.98), offset=0.0, **_VIS_OUTDOOR),
    # outdoor park: dark hedge, sandy path
    5: dict(bands=(SceneBand(0.60, (0.20, 0.34, 0.22), "foliage", 0.40),
                   SceneBand(1.0, (0.60, 0.54, 0.42), "tiles", 0.15)),
            occluder=(0.24, 0.30, 0.22), gain=(1.06, 1.04, 0.94), offset=0.01, **_VIS_OUTDOOR),
    # infrared outdoor: cold sky, warm building panels, warm pavement
    6: dict(bands=(SceneBand(0.30, (0.06,), "sky", 0.30), SceneBand(0.60, (0.18,), "panels", 0.30),
                   SceneBand(1.0, (0.24,), "tiles", 0.20)),
            occluder=(0.20,), gain=(0.95,), offset=0.04, **_IR_OUTDOOR),
}

# ----------------------------------------------------------------------------------------------------------
# 4. Vignetting (multiplies the scene before gain / noise in the sensor) and JPEG quality.
_VIGNETTE = {"vis": 0.30, "ir": 0.22}  # brightness loss in the corners
_JPEG_QUALITY = 80

_toolkit_sensor = render_mod._sensor


@functools.lru_cache(maxsize=8)
def _vignette(height, width, strength):
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height * 2.0 - 1.0
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width * 2.0 - 1.0
    radius2 = 0.5 * (ys[:, None] ** 2 + xs[None, :] ** 2)  # 1 in the corners
    return (1.0 - strength * radius2)[..., None].astype(np.float32)


@functools.wraps(_toolkit_sensor)
def sensor_world2(image, camera, view, rng):
    image = image * _vignette(image.shape[0], image.shape[1], _VIGNETTE[camera.modality])
    return _toolkit_sensor(image, camera, view, rng)


# ----------------------------------------------------------------------------------------------------------
def install_world2():
    """Patch the generator modules of this process (call-time lookups: writer.sample_identity,
    render._EMISSIVITY_SHARE (read by render._fabric_grey), render._sensor (read by render._render),
    scene.CAMERAS (the dict object shared by writer/sheet/render via scene._camera), writer.JPEG_QUALITY,
    writer.PAIRED_SPLITS)."""
    writer_mod.sample_identity = sample_identity_world2
    identity_mod.sample_identity = sample_identity_world2
    synthetic_pkg.sample_identity = sample_identity_world2
    render_mod._EMISSIVITY_SHARE = _EMISSIVITY_SHARE
    render_mod._sensor = sensor_world2
    writer_mod.JPEG_QUALITY = _JPEG_QUALITY
    writer_mod.PAIRED_SPLITS = ()  # no evaluation pairs: its infrared cameras do not mirror a visible camera's layout
    cameras = scene_mod.CAMERAS
    if writer_mod.CAMERAS is not cameras:
        raise RuntimeError("the generator's writer no longer shares scene.CAMERAS: update install_world2")
    for camid, changes in _CAMERA_CHANGES.items():
        cameras[camid] = dataclasses.replace(cameras[camid], **changes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", help="folder of the tree to write (new, or a partial tree of this script)")
    parser.add_argument("--num-ids", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--images-per-camera", type=int, default=4)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--sheet", help="write only a contact sheet PNG (8 ids x 6 cameras) here and exit")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)
    if not args.sheet and not args.root:
        parser.error("give --root (dataset) or --sheet (contact sheet)")

    install_world2()

    if args.sheet:
        with tempfile.TemporaryDirectory(prefix="world2_sheet_") as tmp:
            tree = Path(tmp) / "tree"
            writer_mod.make_synthetic_sysu(tree, num_ids=8, seed=args.seed, images_per_camera=1,
                                           test_fraction=0.25, val_fraction=0.0)
            out = synthetic_pkg.render_contact_sheet(tree, args.sheet, num_ids=8)
        print(f"contact sheet: {out}")
        return 0

    summary = writer_mod.make_synthetic_sysu(args.root, num_ids=args.num_ids, seed=args.seed,
                                             images_per_camera=args.images_per_camera,
                                             test_fraction=args.test_fraction, val_fraction=args.val_fraction,
                                             progress=args.progress)
    print(f"second world at {summary['root']}: {summary['num_ids']} ids (train {len(summary['train_ids'])}, "
          f"val {len(summary['val_ids'])}, test {len(summary['test_ids'])}), {summary['total_images']} images "
          f"({summary['written']} written now), per camera {summary['images_per_camera']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
