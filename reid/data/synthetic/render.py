"""From geometry to pixels: per-camera material palettes (colours for visible cameras, temperatures
and emissivities for infrared ones), compositing over the background, and the sensor model (blur,
gain, noise, quantisation). Both modalities read the same `BodyGeometry`, so they differ only in the
values given to each material and in the camera model. `render_counterpart` renders an image's other
modality (same person, view, geometry and scene) through the camera's counterpart camera."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .body import MATERIALS, BodyGeometry, body_geometry
from .identity import PersonIdentity, PersonView, luminance
from .scene import CameraSpec, _camera, counterpart_camera, scene_background
from .seeds import _TAG_FIXED_PATTERN


@dataclass(frozen=True)
class Palette:
    """What each material looks like to one camera, as [C] float32 values (C = 3 visible, 1 infrared).

    base: material -> value. pattern: material -> value where its pattern field is 1 ("top", "bottom").
    """

    base: Mapping[str, np.ndarray]
    pattern: Mapping[str, np.ndarray]


def _values(*values: tuple[float, ...] | float) -> list[np.ndarray]:
    """Each value (a tuple or a scalar) as a [C] float32 array."""
    return [np.atleast_1d(np.asarray(value, np.float32)) for value in values]


def visible_palette(identity: PersonIdentity, camera: CameraSpec) -> Palette:
    """The clothing, skin, hair and accessory colours ([3] RGB) seen by a visible camera."""
    base = _values(identity.skin_rgb, identity.hair_rgb, identity.top_rgb, identity.bottom_rgb,
                   identity.shoes_rgb, identity.accessory_rgb, identity.emblem_rgb, camera.occluder)
    return Palette(dict(zip(MATERIALS, base)),
                   dict(zip(("top", "bottom"), _values(identity.top_pattern_rgb, identity.bottom_pattern_rgb))))


_SHOE_TEMPERATURE = 0.3


# Share of a garment's infrared grey level set by its fabric emissivity (drawn independently of its colour); the rest
# follows its visible luminance (as under the near-infrared illumination of SYSU-MM01's cameras 3 and 6, where fabric
# that reflects more light looks brighter). Hue never reaches the infrared image: equal-luminance colours look alike.
_EMISSIVITY_SHARE = 0.3


def _fabric_grey(emissivity: float, rgb) -> float:
    """Infrared grey level (0.25..0.85) of a garment, from its emissivity and its visible luminance."""
    return 0.25 + 0.6 * (_EMISSIVITY_SHARE * emissivity + (1.0 - _EMISSIVITY_SHARE) * luminance(rgb))


def infrared_palette(identity: PersonIdentity, camera: CameraSpec) -> Palette:
    """The grey levels ([1]) seen by an infrared camera: temperatures, emissivities and luminance, never hue."""
    base = _values(identity.skin_temperature, identity.hair_temperature,
                   _fabric_grey(identity.top_emissivity, identity.top_rgb),
                   _fabric_grey(identity.bottom_emissivity, identity.bottom_rgb),
                   _SHOE_TEMPERATURE, identity.accessory_temperature,
                   _fabric_grey(identity.emblem_emissivity, identity.emblem_rgb), camera.occluder)
    pattern = _values(_fabric_grey(identity.top_pattern_emissivity, identity.top_pattern_rgb),
                      _fabric_grey(identity.bottom_pattern_emissivity, identity.bottom_pattern_rgb))
    return Palette(dict(zip(MATERIALS, base)), dict(zip(("top", "bottom"), pattern)))


def _composite(geometry: BodyGeometry, palette: Palette, background: np.ndarray, shading: float) -> np.ndarray:
    """[H, W, C] float32: the person's materials over `background` ([H, W, C]), darker at part outlines."""
    weights, values = [], []
    for name, weight in geometry.materials.items():
        weights.append(weight)
        values.append(palette.base[name])
        if name in geometry.patterns:
            weights.append(weight * geometry.patterns[name])
            values.append(palette.pattern[name] - palette.base[name])
    person = np.stack(weights, axis=-1) @ np.stack(values)
    shade = 1.0 - shading * geometry.rim * geometry.rim
    return background * geometry.background[..., None] + person * shade[..., None]


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """[H, W, C] float32 separable gaussian blur with edge padding; identity for sigma < 0.3."""
    if sigma < 0.3:
        return image
    radius = int(math.ceil(2.5 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
        size = image.shape[axis]
        taps = (padded[i:i + size] if axis == 0 else padded[:, i:i + size] for i in range(len(kernel)))
        image = sum(k * tap for k, tap in zip(kernel, taps))
    return image


@lru_cache(maxsize=16)
def _column_pattern(camid: int, width: int) -> np.ndarray:
    """[1, W, 1] float32 fixed vertical-stripe pattern of one camera's sensor (unit variance)."""
    return np.random.default_rng([camid, width, _TAG_FIXED_PATTERN]).standard_normal((1, width, 1)).astype(np.float32)


def _sensor(image: np.ndarray, camera: CameraSpec, view: PersonView, rng: np.random.Generator) -> np.ndarray:
    """[H, W, 3] uint8 from a [H, W, C] float image: blur, gain and offset, noise, quantisation."""
    image = _gaussian_blur(image, math.hypot(camera.blur, view.blur))
    image = image * (np.asarray(camera.gain, np.float32) * view.exposure) + camera.offset
    image = image + camera.noise * rng.standard_normal(image.shape, dtype=np.float32)
    if camera.column_noise:
        image = image + camera.column_noise * _column_pattern(camera.camid, image.shape[1])
    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def _render(identity: PersonIdentity, view: PersonView, camera: CameraSpec, height: int, width: int,
            geometry: BodyGeometry | None) -> np.ndarray:
    """[H, W, 3] uint8 image of `identity` seen by `camera`, in the camera's modality.

    One random stream, seeded by `view.noise_seed`, draws the background textures and then the sensor noise:
    cameras with the same band textures (a camera and its counterpart) get the same background texture field.
    """
    geometry = geometry if geometry is not None else body_geometry(identity, view, height, width)
    palette = visible_palette(identity, camera) if camera.modality == "vis" else infrared_palette(identity, camera)
    rng = np.random.default_rng(view.noise_seed)
    background = scene_background(camera, view, height, width, rng)
    image = _composite(geometry, palette, background, camera.shading)
    return _sensor(image, camera, view, rng)


def render_visible(identity: PersonIdentity, view: PersonView, camera: int, height: int, width: int,
                   geometry: BodyGeometry | None = None) -> np.ndarray:
    """[H, W, 3] uint8 colour image from visible camera 1, 2, 4 or 5."""
    return _render(identity, view, _camera(camera, "vis"), height, width, geometry)


def render_infrared(identity: PersonIdentity, view: PersonView, camera: int, height: int, width: int,
                    geometry: BodyGeometry | None = None) -> np.ndarray:
    """[H, W, 3] uint8 thermal image (three equal channels) from infrared camera 3 or 6."""
    return _render(identity, view, _camera(camera, "ir"), height, width, geometry)


def render_image(identity: PersonIdentity, view: PersonView, camera: int, height: int, width: int) -> np.ndarray:
    """[H, W, 3] uint8 image from any SYSU-MM01 camera 1..6, in that camera's modality."""
    return _render(identity, view, _camera(camera), height, width, None)


def render_counterpart(identity: PersonIdentity, view: PersonView, camera: int, height: int, width: int,
                       geometry: BodyGeometry | None = None) -> np.ndarray:
    """[H, W, 3] uint8: the image `render_image(identity, view, camera, ...)` in the other modality, for evaluation
    only: same person, view and geometry, the same scene bands and texture field, seen by
    `counterpart_camera(camera)` (infrared, three equal channels, for a visible camera; colour for an infrared one)."""
    return _render(identity, view, counterpart_camera(camera), height, width, geometry)
