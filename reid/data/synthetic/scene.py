"""The six SYSU-MM01 cameras (`CameraSpec`, `CAMERAS`), the counterpart camera of each (`counterpart_camera`:
the same scene seen in the other modality, for the evaluation-only registered pairs) and their textured
backgrounds (`scene_background`)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .identity import PersonView, luminance
from .shapes import _unit


@dataclass(frozen=True)
class SceneBand:
    """One horizontal band of a background, top to bottom.

    bottom: lower edge as a fraction of the image height (the last band ends at 1.0).
    value: RGB in [0, 1] for a visible camera, (grey,) for an infrared one.
    texture: "flat", "sky", "panels", "tiles", "foliage" or "bricks"; contrast scales it.
    """

    bottom: float
    value: tuple[float, ...]
    texture: str
    contrast: float


@dataclass(frozen=True)
class CameraSpec:
    """One camera: modality, scene and sensor model.

    camid: the SYSU-MM01 camera number; in a counterpart camera (`counterpart_camera`), the camera whose
    sensor it borrows (and so whose fixed column pattern).
    gain: per-channel gain (white balance x brightness; one value for infrared), applied with `offset`
    after compositing. noise: gaussian sigma; column_noise: sigma of the camera's fixed vertical pattern.
    blur: base gaussian sigma in pixels. shading: how much a part darkens towards its outline.
    occluder: colour (or grey) of the background-coloured bars that rarely hide part of a person.
    """

    camid: int
    modality: str
    outdoor: bool
    bands: tuple[SceneBand, ...]
    occluder: tuple[float, ...]
    gain: tuple[float, ...]
    offset: float
    noise: float
    column_noise: float
    blur: float
    shading: float


_INDOOR_IR = dict(modality="ir", outdoor=False, noise=0.02, column_noise=0.01, blur=0.5, shading=0.15)
_OUTDOOR_IR = dict(modality="ir", outdoor=True, noise=0.025, column_noise=0.014, blur=0.6, shading=0.15)
_INDOOR_VIS = dict(modality="vis", outdoor=False, noise=0.013, column_noise=0.0, blur=0.0, shading=0.35)
_OUTDOOR_VIS = dict(modality="vis", outdoor=True, noise=0.010, column_noise=0.0, blur=0.0, shading=0.40)

# Cameras 1, 2 indoor under warm / greenish artificial light; 4, 5 outdoor in brighter daylight;
# 3 (indoor) and 6 (outdoor) infrared with their own gain and offset.
CAMERAS: dict[int, CameraSpec] = {
    1: CameraSpec(1, bands=(SceneBand(0.62, (0.80, 0.74, 0.62), "panels", 0.10),
                            SceneBand(1.0, (0.46, 0.42, 0.38), "tiles", 0.15)),
                  occluder=(0.70, 0.64, 0.54), gain=(1.06, 0.93, 0.74), offset=0.0, **_INDOOR_VIS),
    2: CameraSpec(2, bands=(SceneBand(0.58, (0.70, 0.75, 0.76), "panels", 0.08),
                            SceneBand(1.0, (0.58, 0.50, 0.40), "tiles", 0.2)),
                  occluder=(0.62, 0.66, 0.66), gain=(0.90, 0.92, 0.80), offset=0.02, **_INDOOR_VIS),
    3: CameraSpec(3, bands=(SceneBand(0.62, (0.13,), "panels", 0.25), SceneBand(1.0, (0.19,), "tiles", 0.2)),
                  occluder=(0.16,), gain=(1.0,), offset=0.02, **_INDOOR_IR),
    4: CameraSpec(4, bands=(SceneBand(0.25, (0.72, 0.84, 0.96), "sky", 0.10),
                            SceneBand(0.55, (0.24, 0.42, 0.18), "foliage", 0.45),
                            SceneBand(1.0, (0.62, 0.61, 0.58), "tiles", 0.12)),
                  occluder=(0.56, 0.55, 0.52), gain=(1.02, 1.05, 1.10), offset=0.0, **_OUTDOOR_VIS),
    5: CameraSpec(5, bands=(SceneBand(0.58, (0.66, 0.44, 0.36), "bricks", 0.25),
                            SceneBand(1.0, (0.55, 0.55, 0.50), "flat", 0.15)),
                  occluder=(0.60, 0.40, 0.33), gain=(1.12, 1.08, 1.02), offset=0.02, **_OUTDOOR_VIS),
    6: CameraSpec(6, bands=(SceneBand(0.25, (0.03,), "sky", 0.3), SceneBand(0.55, (0.12,), "foliage", 0.5),
                            SceneBand(1.0, (0.17,), "tiles", 0.15)),
                  occluder=(0.10,), gain=(0.82,), offset=0.09, **_OUTDOOR_IR),
}


def _camera(camid: int, modality: str | None = None) -> CameraSpec:
    """The spec of camera `camid`; ValueError when unknown or not of `modality` ("vis" / "ir") if given."""
    cameras = [c for c, spec in CAMERAS.items() if modality in (None, spec.modality)]
    if camid not in cameras:
        kind = {"vis": "a visible ", "ir": "an infrared "}.get(modality, "a ")
        raise ValueError(f"camera must be {kind}SYSU-MM01 camera, one of {cameras}, got {camid!r}")
    return CAMERAS[camid]


# ------------------------------------------------------------------------------------------- counterpart cameras
#
# The counterpart of a camera sees the same scene (band positions, textures and their contrast, drawn from the same
# random stream) in the other modality, through the sensor of a real camera of that modality in the same setting:
#
# - infrared counterpart of a visible camera (1, 2 indoor; 4, 5 outdoor): that camera's bands, each grey level the
#   ITU-R 601 luminance of the band colour (the rule the garments' infrared grey follows) times the setting's
#   background scale (below); the occluder likewise; gain, offset, noise, column noise, blur and shading of the
#   infrared camera of the setting (cam 3 indoor, cam 6 outdoor).
# - visible counterpart of an infrared camera (3, 6): its bands, coloured as the bands of the visible camera whose
#   layout it mirrors (cam 3 ~ cam 1: panels over tiles, horizon at 0.62; cam 6 ~ cam 4: sky, foliage, tiles at
#   0.25 / 0.55), the occluder in that camera's colour, and that camera's sensor (gain, offset, noise, blur, shading).
#
# Background scale of a setting: mean band grey of its infrared camera over mean band luminance of the visible camera
# that camera mirrors (indoor 0.16 / 0.586 = 0.27, outdoor 0.107 / 0.589 = 0.18). The near-infrared illuminator
# lights the person more than the scene behind, so backgrounds stay as dark as the real infrared cameras show them,
# while their brightness order still follows the visible colours.

INFRARED_CAMERA_OF_SETTING = {False: 3, True: 6}  # CameraSpec.outdoor -> the infrared camera of that setting
MIRRORED_VISIBLE_CAMERA = {3: 1, 6: 4}  # infrared camera -> the visible camera whose scene layout it shares


def _setting_grey_scale(outdoor: bool) -> float:
    """Infrared grey per unit of visible luminance of a setting's backgrounds (see the note above)."""
    infrared = CAMERAS[INFRARED_CAMERA_OF_SETTING[outdoor]]
    visible = CAMERAS[MIRRORED_VISIBLE_CAMERA[infrared.camid]]
    grey = np.mean([band.value[0] for band in infrared.bands])
    return float(grey / np.mean([luminance(band.value) for band in visible.bands]))


def _sensor_settings(camera: CameraSpec) -> dict:
    """The sensor fields of `camera` (those a counterpart borrows), with its camid and modality."""
    return dict(camid=camera.camid, modality=camera.modality, gain=camera.gain, offset=camera.offset,
                noise=camera.noise, column_noise=camera.column_noise, blur=camera.blur, shading=camera.shading)


@lru_cache(maxsize=None)
def counterpart_camera(camid: int) -> CameraSpec:
    """The camera that sees camera `camid`'s scene in the other modality (see the note above): for a visible
    camera an infrared one with the same bands in grey and the sensor of the setting's infrared camera; for an
    infrared camera a visible one with the same bands coloured as, and the sensor of, the visible camera it
    mirrors. ValueError for an unknown camera."""
    camera = _camera(camid)
    if camera.modality == "vis":
        scale = _setting_grey_scale(camera.outdoor)
        grey = lambda rgb: (round(scale * luminance(rgb), 6),)  # noqa: E731
        sensor = CAMERAS[INFRARED_CAMERA_OF_SETTING[camera.outdoor]]
        bands = tuple(replace(band, value=grey(band.value)) for band in camera.bands)
        occluder = grey(camera.occluder)
    else:
        sensor = CAMERAS[MIRRORED_VISIBLE_CAMERA[camid]]
        if [(b.bottom, b.texture) for b in camera.bands] != [(b.bottom, b.texture) for b in sensor.bands]:
            raise AssertionError(f"camera {camid} no longer mirrors the layout of camera {sensor.camid}")
        bands = tuple(replace(band, value=colour.value) for band, colour in zip(camera.bands, sensor.bands))
        occluder = sensor.occluder
    return CameraSpec(outdoor=camera.outdoor, bands=bands, occluder=occluder, **_sensor_settings(sensor))


@lru_cache(maxsize=64)
def _interpolation_matrix(size: int, cells: int) -> np.ndarray:
    """[size, cells] float32 weights that linearly interpolate `cells` grid values onto `size` pixels."""
    positions = (np.arange(size) + 0.5) / size * (cells - 1)
    lower = np.minimum(np.floor(positions).astype(int), cells - 2)
    frac = (positions - lower).astype(np.float32)
    matrix = np.zeros((size, cells), np.float32)
    matrix[np.arange(size), lower] = 1.0 - frac
    matrix[np.arange(size), lower + 1] = frac
    return matrix


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """[H, W] float32 smooth noise (unit-variance grid values interpolated bilinearly)."""
    grid = rng.standard_normal(cells).astype(np.float32)
    return _interpolation_matrix(height, cells[0]) @ grid @ _interpolation_matrix(width, cells[1]).T


def _line_mask(phase: np.ndarray, per_pixel: np.ndarray | float) -> np.ndarray:
    """About one-pixel-wide lines where `phase` crosses an integer; per_pixel: phase change per pixel."""
    distance = np.abs(phase - np.round(phase)) / np.maximum(per_pixel, 1e-3)
    return _unit(1.0 - distance)


def _sky(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Brightening towards the horizon."""
    return 2.0 * (ys - top) / max(bottom - top, 1.0) - 1.0


def _panels(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Dark vertical seams of wall panels, 2 to 3 per image width."""
    period = xs.shape[1] / rng.uniform(2.2, 3.2)
    return -1.5 * _line_mask((xs + rng.uniform(0, period)) / period, 1.0 / period)


def _tiles(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Floor tile seams in perspective: rows closer together near the horizon, columns converging."""
    height, width = ys.shape[0], xs.shape[1]
    depth = np.maximum(ys - top, 0.0) + 2.0
    rows = np.sqrt(depth) * (0.9 * math.sqrt(64.0 / height))
    columns = (xs - 0.5 * width - rng.uniform(-4, 4)) / depth * 1.2
    lines = np.maximum(_line_mask(rows, 0.5 * rows / depth), _line_mask(columns, 1.2 / depth))
    return -1.2 * lines * (ys > top)


def _foliage(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Blotchy leaves: mid-frequency noise plus pixel noise."""
    height, width = ys.shape[0], xs.shape[1]
    cells = (max(height // 6, 2), max(width // 6, 2))
    return 0.9 * _smooth_noise(rng, height, width, cells) + 0.3 * rng.standard_normal((height, width))


def _bricks(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """Staggered bricks of random shade with light mortar lines."""
    brick_h, brick_w = ys.shape[0] / 25.0, xs.shape[1] / 7.0
    row = np.floor(ys / brick_h)
    offset = 0.5 * (row % 2)
    col = np.floor(xs / brick_w + offset)
    shades = rng.standard_normal((int(row.max()) + 1, int(col.max()) + 1)).astype(np.float32)
    mortar = np.maximum(_line_mask(ys / brick_h, 1.0 / brick_h), _line_mask(xs / brick_w + offset, 1.0 / brick_w))
    return 0.4 * shades[row.astype(int), col.astype(int)] + 2.0 * mortar


def _flat(rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, top: float, bottom: float) -> np.ndarray:
    """No structure beyond the low-frequency shading every band has."""
    return np.zeros((ys.shape[0], xs.shape[1]), np.float32)


_TEXTURES = {"sky": _sky, "panels": _panels, "tiles": _tiles, "foliage": _foliage, "bricks": _bricks, "flat": _flat}


def _texture(kind: str, rng: np.random.Generator, top: float, bottom: float, height: int, width: int) -> np.ndarray:
    """[H, W] float32 texture of a band spanning rows top..bottom, roughly in [-1, 1], over smooth shading."""
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5
    return 0.5 * _smooth_noise(rng, height, width, (4, 3)) + _TEXTURES[kind](rng, ys, xs, top, bottom)


def scene_background(camera: CameraSpec, view: PersonView, height: int, width: int,
                     rng: np.random.Generator) -> np.ndarray:
    """[H, W, C] float32 background of `camera` (C = 3 visible, 1 infrared): bands with textures."""
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
    channels = len(camera.bands[0].value)
    image = np.zeros((height, width, channels), np.float32)
    top = 0.0
    for index, band in enumerate(camera.bands):
        last = index == len(camera.bands) - 1
        bottom = float(height) if last else (band.bottom + view.horizon_shift) * height
        weight = _unit(ys - top + 0.5) - (0.0 if last else _unit(ys - bottom + 0.5))
        shade = 1.0 + band.contrast * _texture(band.texture, rng, top, bottom, height, width)
        image += (weight * shade)[..., None] * np.asarray(band.value, np.float32)
        top = bottom
    return image
