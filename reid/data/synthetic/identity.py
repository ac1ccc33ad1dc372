"""Who is drawn: `PersonIdentity` (fixed per person) and `PersonView` (per image), their samplers,
and the colour and emissivity helpers they draw with."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB = tuple[float, float, float]

TOP_PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots", "diagonal")
BOTTOM_PATTERNS = ("solid", "stripes", "vstripes")
EMBLEMS = ("none", "circle", "square", "triangle", "cross")  # a print on the chest (and back)
BOTTOM_STYLES = ("trousers", "shorts", "skirt")
ACCESSORIES = ("none", "backpack", "shoulder_bag", "hat", "scarf")


@dataclass(frozen=True)
class PersonIdentity:
    """What stays the same across every image of one person.

    Lengths are fractions of the body height. Fields ending in `_rgb` are visible colours in [0, 1];
    the infrared renderer never reads them. Emissivities (0..1) and temperatures (0..1 grey level)
    are infrared-only and drawn independently of the colours.
    """

    height_frac: float
    shoulder_width: float
    hip_width: float
    head_size: float
    leg_ratio: float
    limb_width: float
    top_length: float
    sleeves: str
    top_pattern: str
    top_pattern_freq: float
    top_pattern_phase: float
    bottom_style: str
    bottom_pattern: str
    bottom_pattern_freq: float
    bottom_pattern_phase: float
    hair_style: str
    emblem: str
    accessory: str
    accessory_side: int
    top_rgb: RGB
    top_pattern_rgb: RGB
    bottom_rgb: RGB
    bottom_pattern_rgb: RGB
    shoes_rgb: RGB
    accessory_rgb: RGB
    emblem_rgb: RGB
    skin_rgb: RGB
    hair_rgb: RGB
    top_emissivity: float
    top_pattern_emissivity: float
    bottom_emissivity: float
    bottom_pattern_emissivity: float
    emblem_emissivity: float
    skin_temperature: float
    hair_temperature: float
    accessory_temperature: float


@dataclass(frozen=True)
class PersonView:
    """What changes from one image of a person to the next.

    dx, dy: offset of the feet, fractions of the image width / height. scale: body height factor.
    leg_spread: ankle offset outwards, fraction of the body height. arm_out: outward arm angles
    (left, right) in radians; arm_swing, elbow_bend: radians (swing foreshortens the arms).
    blur: extra gaussian sigma in pixels (0: none). occluder: None or (kind "pillar" | "rail",
    centre, size) as fractions of the image. noise_seed seeds the image noise and background texture.
    """

    dx: float
    dy: float
    scale: float
    flip: bool
    facing_back: bool
    leg_spread: float
    arm_out: tuple[float, float]
    arm_swing: float
    elbow_bend: float
    blur: float
    exposure: float
    horizon_shift: float
    occluder: tuple[str, float, float] | None
    noise_seed: int


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    """An RGB triple in [0, 1] from a hue (wrapping) and a saturation and value (clipped to [0, 1])."""
    rgb = colorsys.hsv_to_rgb(float(hue) % 1.0, min(max(float(saturation), 0.0), 1.0), min(max(float(value), 0.0), 1.0))
    return tuple(round(c, 6) for c in rgb)


def _clothing_colour(rng: np.random.Generator) -> RGB:
    """A garment colour: a third achromatic (black, greys, white), the rest saturated hues."""
    if rng.random() < 0.35:
        value = rng.choice([0.08, 0.2, 0.42, 0.68, 0.9]) + rng.normal(0.0, 0.03)
        return _hsv(rng.random(), rng.uniform(0.0, 0.08), value)
    return _hsv(rng.random(), rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.95))


def _contrasting_colour(rng: np.random.Generator, colour: RGB) -> RGB:
    """A second pattern colour whose value differs from `colour`'s by about 0.45."""
    value = max(colour)
    other = value + 0.45 if value < 0.5 else value - 0.45
    return _hsv(rng.random(), rng.uniform(0.0, 0.8), other)


def luminance(rgb: RGB) -> float:
    """ITU-R 601 luma of an RGB triple in [0, 1]."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _contrasting_emissivity(rng: np.random.Generator, emissivity: float, colour: RGB, pattern_colour: RGB) -> float:
    """A pattern emissivity 0.45..0.6 away from `emissivity`, inside [0, 1]: higher where the pattern colour is brighter
    than the garment's, so that emissivity and luminance brighten the same parts (the pattern never vanishes)."""
    step = rng.uniform(0.45, 0.6)
    brighter = luminance(pattern_colour) > luminance(colour)
    return float(min(emissivity + step, 1.0) if brighter else max(emissivity - step, 0.0))


def _choice(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...]) -> str:
    """One of `options`, drawn with probabilities `p`."""
    return str(options[rng.choice(len(options), p=p)])


def sample_identity(rng: np.random.Generator) -> PersonIdentity:
    """Draw one person's body shape, clothing, accessories, colours and infrared properties."""
    skin_tone = rng.random()
    dark_hair = rng.random() < 0.85
    top_pattern = _choice(rng, TOP_PATTERNS, (0.25, 0.15, 0.15, 0.15, 0.15, 0.15))
    top_rgb = _clothing_colour(rng)
    top_pattern_rgb = _contrasting_colour(rng, top_rgb)
    bottom_rgb = _clothing_colour(rng)
    bottom_pattern_rgb = _contrasting_colour(rng, bottom_rgb)
    emblem_rgb = _contrasting_colour(rng, top_rgb)
    top_emissivity = float(rng.uniform(0.05, 0.95))
    bottom_emissivity = float(rng.uniform(0.05, 0.95))
    return PersonIdentity(
        height_frac=float(rng.uniform(0.80, 0.90)),
        shoulder_width=float(rng.uniform(0.095, 0.13)),
        hip_width=float(rng.uniform(0.075, 0.105)),
        head_size=float(rng.uniform(0.115, 0.14)),
        leg_ratio=float(rng.uniform(0.45, 0.52)),
        limb_width=float(rng.uniform(0.030, 0.040)),
        top_length=float(rng.uniform(0.10, 0.20) if rng.random() < 0.25 else rng.uniform(-0.02, 0.06)),
        sleeves=_choice(rng, ("long", "short"), (0.6, 0.4)),
        top_pattern=top_pattern,
        top_pattern_freq=float(rng.uniform(1.5, 3.5)),
        top_pattern_phase=float(rng.random()),
        bottom_style=_choice(rng, BOTTOM_STYLES, (0.6, 0.2, 0.2)),
        bottom_pattern=_choice(rng, BOTTOM_PATTERNS, (0.5, 0.25, 0.25)),
        bottom_pattern_freq=float(rng.uniform(2.5, 5.0)),
        bottom_pattern_phase=float(rng.random()),
        hair_style=_choice(rng, ("short", "long"), (0.6, 0.4)),
        emblem=_choice(rng, EMBLEMS, (0.4, 0.15, 0.15, 0.15, 0.15)),
        accessory=_choice(rng, ACCESSORIES, (0.35, 0.2, 0.15, 0.15, 0.15)),
        accessory_side=int(rng.choice([-1, 1])),
        top_rgb=top_rgb,
        top_pattern_rgb=top_pattern_rgb,
        bottom_rgb=bottom_rgb,
        bottom_pattern_rgb=bottom_pattern_rgb,
        shoes_rgb=_hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.25) if rng.random() < 0.7
                       else rng.uniform(0.6, 0.95)),
        accessory_rgb=_clothing_colour(rng),
        emblem_rgb=emblem_rgb,
        skin_rgb=tuple(round(float(a + (b - a) * skin_tone), 6)
                       for a, b in zip((0.93, 0.78, 0.66), (0.42, 0.28, 0.20))),
        hair_rgb=(_hsv(0.07, rng.uniform(0.3, 0.6), rng.uniform(0.05, 0.28)) if dark_hair
                  else _hsv(0.1, rng.uniform(0.4, 0.6), rng.uniform(0.5, 0.75))),
        top_emissivity=top_emissivity,
        top_pattern_emissivity=_contrasting_emissivity(rng, top_emissivity, top_rgb, top_pattern_rgb),
        bottom_emissivity=bottom_emissivity,
        bottom_pattern_emissivity=_contrasting_emissivity(rng, bottom_emissivity, bottom_rgb, bottom_pattern_rgb),
        emblem_emissivity=_contrasting_emissivity(rng, top_emissivity, top_rgb, emblem_rgb),
        skin_temperature=float(rng.uniform(0.86, 0.97)),
        hair_temperature=float(rng.uniform(0.38, 0.52)),
        accessory_temperature=float(rng.uniform(0.24, 0.34)),
    )


def sample_view(rng: np.random.Generator) -> PersonView:
    """Draw the per-image variation: placement, pose, facing, blur, exposure, rare occlusion."""
    occluder = None
    if rng.random() < 0.08:
        if rng.random() < 0.5:
            occluder = ("pillar", float(rng.choice([0.1, 0.9]) + rng.uniform(-0.08, 0.08)),
                        float(rng.uniform(0.15, 0.3)))
        else:
            occluder = ("rail", float(rng.uniform(0.72, 0.88)), float(rng.uniform(0.08, 0.16)))
    return PersonView(
        dx=float(np.clip(rng.normal(0.0, 0.035), -0.09, 0.09)),
        dy=float(rng.uniform(-0.025, 0.01)),
        scale=float(rng.uniform(0.93, 1.05)),
        flip=bool(rng.random() < 0.5),
        facing_back=bool(rng.random() < 0.35),
        leg_spread=float(rng.uniform(-0.01, 0.07)),
        arm_out=(float(rng.uniform(0.03, 0.22)), float(rng.uniform(0.03, 0.22))),
        arm_swing=float(rng.uniform(-0.6, 0.6)),
        elbow_bend=float(rng.uniform(0.0, 0.7)),
        blur=float(0.0 if rng.random() < 0.5 else rng.uniform(0.4, 0.9)),
        exposure=float(rng.uniform(0.88, 1.12)),
        horizon_shift=float(rng.uniform(-0.04, 0.04)),
        occluder=occluder,
        noise_seed=int(rng.integers(0, 2**32)),
    )
