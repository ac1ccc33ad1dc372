"""Where the person is in one image: skeleton, body parts, accessories, occluders and clothing
patterns, composited into one `BodyGeometry` shared by both renderers."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .identity import PersonIdentity, PersonView
from .shapes import _capsule, _ellipse, _Grid, _keep_above, _Layer, _trapezoid, _unit

MATERIALS = ("skin", "hair", "top", "bottom", "shoes", "accessory", "emblem", "occluder")


@dataclass(frozen=True)
class _Skeleton:
    """Key points and sizes of one posed body, in pixels (x right, y down), before any flip."""

    body: float
    cx: float
    feet_y: float
    head: tuple[float, float]
    head_rx: float
    head_ry: float
    shoulder_y: float
    shoulder_half: float
    hip_y: float
    hip_half: float
    hem_y: float
    limb: float


def _skeleton(identity: PersonIdentity, view: PersonView, height: int, width: int) -> _Skeleton:
    """Place the body in an image of `height` x `width` pixels."""
    body = identity.height_frac * view.scale * height
    feet_y = height * (0.965 + view.dy)
    top = feet_y - body
    head_ry = 0.5 * identity.head_size * body
    hip_y = feet_y - identity.leg_ratio * body
    cx = width * (0.5 + view.dx)
    return _Skeleton(
        body=body, cx=cx, feet_y=feet_y, head=(cx, top + head_ry),
        head_rx=0.78 * head_ry, head_ry=head_ry, shoulder_y=top + 2.0 * head_ry + 0.035 * body,
        shoulder_half=identity.shoulder_width * body, hip_y=hip_y, hip_half=identity.hip_width * body,
        hem_y=hip_y + identity.top_length * body, limb=identity.limb_width * body,
    )


def _leg_layers(grid: _Grid, identity: PersonIdentity, view: PersonView, sk: _Skeleton) -> list[_Layer]:
    """Thighs, shins, shoes and the crotch / skirt piece, back to front."""
    b, limb = sk.body, sk.limb
    thigh_material = "skin" if identity.bottom_style == "skirt" else "bottom"
    shin_material = "bottom" if identity.bottom_style == "trousers" else "skin"
    layers = []
    for side, spread in ((-1, view.leg_spread), (1, 0.8 * view.leg_spread)):
        hip = (sk.cx + side * 0.55 * sk.hip_half, sk.hip_y)
        ankle = (hip[0] + side * spread * b, sk.feet_y - 0.035 * b)
        knee = (0.5 * (hip[0] + ankle[0]) + side * 0.01 * b, 0.5 * (hip[1] + ankle[1]))
        layers.append(_capsule(grid, "thigh", thigh_material, hip, knee, 1.5 * limb, 1.2 * limb))
        layers.append(_capsule(grid, "shin", shin_material, knee, ankle, 1.15 * limb, 0.85 * limb))
        layers.append(_ellipse(grid, "shoe", "shoes", (ankle[0] + side * 0.01 * b, sk.feet_y - 0.022 * b),
                               0.05 * b, 0.028 * b))
    if identity.bottom_style == "skirt":
        layers.append(_trapezoid(grid, "skirt", "bottom", sk.cx, sk.hip_y - 0.02 * b, sk.hip_y + 0.22 * b,
                                 sk.hip_half, 1.35 * sk.hip_half + view.leg_spread * b))
    else:
        layers.append(_trapezoid(grid, "pelvis", "bottom", sk.cx, sk.hip_y - 0.03 * b, sk.hip_y + 0.09 * b,
                                 sk.hip_half, 0.75 * sk.hip_half))
    return layers


def _torso_layers(grid: _Grid, identity: PersonIdentity, sk: _Skeleton) -> list[_Layer]:
    """Neck, torso (top garment down to its hem) and the chest emblem."""
    hem_half = 1.05 * sk.hip_half + 0.15 * max(sk.hem_y - sk.hip_y, 0.0)
    return [
        _capsule(grid, "neck", "skin", (sk.cx, sk.head[1] + 0.6 * sk.head_ry), (sk.cx, sk.shoulder_y),
                 0.45 * sk.head_rx),
        _trapezoid(grid, "torso", "top", sk.cx, sk.shoulder_y, sk.hem_y, sk.shoulder_half, hem_half),
        *_emblem_layers(grid, identity, sk),
    ]


def _emblem_layers(grid: _Grid, identity: PersonIdentity, sk: _Skeleton) -> list[_Layer]:
    """The chest print: a circle, square, triangle or cross about half the shoulder width across."""
    size = 0.5 * sk.shoulder_half
    cx, cy = sk.cx, sk.shoulder_y + 0.35 * max(sk.hip_y - sk.shoulder_y, 1.0)
    if identity.emblem == "circle":
        return [_ellipse(grid, "emblem", "emblem", (cx, cy), size, size)]
    if identity.emblem == "square":
        return [_trapezoid(grid, "emblem", "emblem", cx, cy - size, cy + size, size, size)]
    if identity.emblem == "triangle":
        return [_trapezoid(grid, "emblem", "emblem", cx, cy - 1.1 * size, cy + 0.9 * size, 0.1 * size, 1.2 * size)]
    if identity.emblem == "cross":
        arm = 0.35 * size
        return [_trapezoid(grid, "emblem", "emblem", cx, cy - 1.2 * size, cy + 1.2 * size, arm, arm),
                _trapezoid(grid, "emblem", "emblem", cx, cy - arm, cy + arm, 1.2 * size, 1.2 * size)]
    return []


def _arm_layers(grid: _Grid, identity: PersonIdentity, view: PersonView, sk: _Skeleton) -> list[_Layer]:
    """Upper arms, forearms, sleeves and hands; swing foreshortens, the elbow bends inwards."""
    b, limb = sk.body, sk.limb
    layers = []
    for side, out, swing in ((-1, view.arm_out[0], view.arm_swing), (1, view.arm_out[1], -0.8 * view.arm_swing)):
        shoulder = (sk.cx + side * (sk.shoulder_half - 0.9 * limb), sk.shoulder_y + 0.9 * limb)
        upper = 0.19 * b * math.cos(swing)
        elbow = (shoulder[0] + side * upper * math.sin(out), shoulder[1] + upper * math.cos(out))
        fore_angle = out - 0.6 * view.elbow_bend
        fore = 0.17 * b * abs(math.cos(swing + view.elbow_bend))
        wrist = (elbow[0] + side * fore * math.sin(fore_angle), elbow[1] + fore * math.cos(fore_angle))
        if identity.sleeves == "long":
            layers.append(_capsule(grid, "upper_arm", "top", shoulder, elbow, 1.05 * limb, 0.9 * limb))
            layers.append(_capsule(grid, "forearm", "top", elbow, wrist, 0.9 * limb, 0.75 * limb))
        else:
            sleeve_end = (shoulder[0] + 0.5 * (elbow[0] - shoulder[0]), shoulder[1] + 0.5 * (elbow[1] - shoulder[1]))
            layers.append(_capsule(grid, "upper_arm", "skin", shoulder, elbow, 0.95 * limb, 0.85 * limb))
            layers.append(_capsule(grid, "forearm", "skin", elbow, wrist, 0.8 * limb, 0.7 * limb))
            layers.append(_capsule(grid, "sleeve", "top", shoulder, sleeve_end, 1.15 * limb, 1.1 * limb))
        layers.append(_ellipse(grid, "hand", "skin", (wrist[0], wrist[1] + 0.4 * limb), 0.8 * limb, 1.0 * limb))
    return layers


def _head_layers(grid: _Grid, identity: PersonIdentity, view: PersonView, sk: _Skeleton) -> list[_Layer]:
    """Face and the hair (or hat) covering it: from behind, hair covers most of the head."""
    (hx, hy), rx, ry = sk.head, sk.head_rx, sk.head_ry
    cut = hy + (0.55 if view.facing_back else -0.25) * ry
    layers = [
        _ellipse(grid, "head", "skin", sk.head, rx, ry),
        _keep_above(grid, _ellipse(grid, "hair", "hair", (hx, hy - 0.05 * ry), 1.08 * rx, 1.06 * ry), cut),
    ]
    if identity.accessory == "hat":
        brim_y = hy - 0.3 * ry
        layers.append(_keep_above(grid, _ellipse(grid, "hat", "accessory", (hx, hy - 0.1 * ry), 1.1 * rx, 1.05 * ry),
                                  brim_y))
        layers.append(_ellipse(grid, "hat_brim", "accessory", (hx, brim_y), 1.5 * rx, 0.2 * ry))
    return layers


def _long_hair(grid: _Grid, sk: _Skeleton) -> _Layer:
    """Hair hanging from the head to below the shoulders."""
    return _capsule(grid, "hair_back", "hair", sk.head, (sk.cx, sk.shoulder_y + 0.10 * sk.body), 1.12 * sk.head_rx)


def _backpack(grid: _Grid, sk: _Skeleton, facing_back: bool) -> _Layer:
    """The pack: wider than the torso behind it, or a narrower block over the back when seen from behind."""
    radius = (0.85 if facing_back else 1.12) * sk.shoulder_half
    return _capsule(grid, "backpack", "accessory", (sk.cx, sk.shoulder_y + 0.07 * sk.body),
                    (sk.cx, sk.hip_y - 0.1 * sk.body), radius)


def _front_accessory_layers(grid: _Grid, identity: PersonIdentity, view: PersonView, sk: _Skeleton) -> list[_Layer]:
    """Accessories in front of the torso: backpack straps or pack, shoulder bag, scarf."""
    b, side = sk.body, identity.accessory_side
    if identity.accessory == "backpack":
        if view.facing_back:
            return [_backpack(grid, sk, facing_back=True)]
        return [_capsule(grid, "strap", "accessory", (sk.cx + s * 0.55 * sk.shoulder_half, sk.shoulder_y - 0.005 * b),
                         (sk.cx + s * 0.6 * sk.shoulder_half, sk.shoulder_y + 0.22 * b), 0.018 * b) for s in (-1, 1)]
    if identity.accessory == "shoulder_bag":
        bag_x = sk.cx + side * 1.25 * sk.hip_half
        return [
            _capsule(grid, "strap", "accessory", (sk.cx - side * 0.75 * sk.shoulder_half, sk.shoulder_y),
                     (bag_x, sk.hip_y - 0.05 * b), 0.014 * b),
            _trapezoid(grid, "bag", "accessory", bag_x, sk.hip_y - 0.07 * b, sk.hip_y + 0.06 * b, 0.065 * b, 0.075 * b),
        ]
    if identity.accessory == "scarf":
        return [
            _capsule(grid, "scarf", "accessory", (sk.cx - 0.55 * sk.shoulder_half, sk.shoulder_y),
                     (sk.cx + 0.55 * sk.shoulder_half, sk.shoulder_y), 0.034 * b),
            _capsule(grid, "scarf_end", "accessory", (sk.cx + side * 0.3 * sk.shoulder_half, sk.shoulder_y),
                     (sk.cx + side * 0.35 * sk.shoulder_half, sk.shoulder_y + 0.16 * b), 0.024 * b),
        ]
    return []


def _occluder_layer(grid: _Grid, occluder: tuple[str, float, float]) -> _Layer:
    """A background-coloured bar in front of the person: a vertical pillar or a horizontal rail."""
    kind, centre, size = occluder
    if kind == "pillar":
        half = 0.5 * size * grid.width
        return _trapezoid(grid, "occluder", "occluder", centre * grid.width, 0.0, float(grid.height), half, half)
    return _trapezoid(grid, "occluder", "occluder", 0.5 * grid.width, (centre - 0.5 * size) * grid.height,
                      (centre + 0.5 * size) * grid.height, grid.width, grid.width)


def _person_layers(grid: _Grid, identity: PersonIdentity, view: PersonView, sk: _Skeleton) -> list[_Layer]:
    """Every part of the person, back to front."""
    layers: list[_Layer] = []
    if identity.hair_style == "long" and not view.facing_back:
        layers.append(_long_hair(grid, sk))
    if identity.accessory == "backpack" and not view.facing_back:
        layers.append(_backpack(grid, sk, facing_back=False))
    layers += _leg_layers(grid, identity, view, sk)
    layers += _torso_layers(grid, identity, sk)
    layers += _head_layers(grid, identity, view, sk)
    if identity.hair_style == "long" and view.facing_back:
        layers.append(_long_hair(grid, sk))
    layers += _front_accessory_layers(grid, identity, view, sk)
    layers += _arm_layers(grid, identity, view, sk)
    if view.occluder is not None:
        layers.append(_occluder_layer(grid, view.occluder))
    return layers


def _soft_square(t: np.ndarray) -> np.ndarray:
    """A square wave of period 1 in [0, 1] with soft edges, from phase `t`."""
    return _unit(0.5 + 2.5 * np.sin(2.0 * np.pi * t))


def _top_pattern(identity: PersonIdentity, grid: _Grid, sk: _Skeleton) -> np.ndarray | None:
    """[H, W] float32 in [0, 1] where the top shows its pattern, in torso coordinates; None when solid."""
    u = (grid.xs - sk.cx) / (2.0 * sk.shoulder_half) + 0.5
    v = (grid.ys - sk.shoulder_y) / max(sk.hem_y - sk.shoulder_y, 1.0)
    freq, phase = identity.top_pattern_freq, identity.top_pattern_phase
    kind = identity.top_pattern
    if kind == "hstripes":
        field = _soft_square(v * freq + phase)
    elif kind == "vstripes":
        field = _soft_square(u * 0.8 * freq + phase)
    elif kind == "checks":
        a, b = _soft_square(u * 0.6 * freq + phase), _soft_square(v * 0.6 * freq + phase)
        field = a + b - 2.0 * a * b
    elif kind == "diagonal":
        field = _soft_square((u + 0.5 * v) * 0.8 * freq + phase)
    elif kind == "dots":
        fu, fv = np.modf(u * 0.7 * freq + phase)[0] - 0.5, np.modf(v * freq + phase)[0] - 0.5
        field = _unit(3.0 - 12.0 * np.hypot(fu, fv * 0.8))
    else:
        return None
    return np.broadcast_to(field, (grid.height, grid.width))


def _bottom_pattern(identity: PersonIdentity, grid: _Grid, sk: _Skeleton) -> np.ndarray | None:
    """[H, W] float32 in [0, 1]: horizontal ("stripes") or vertical bands on the bottom garment; None when solid."""
    if identity.bottom_pattern == "stripes":
        v = (grid.ys - sk.hip_y) / max(sk.feet_y - sk.hip_y, 1.0)
        field = _soft_square(v * identity.bottom_pattern_freq + identity.bottom_pattern_phase)
    elif identity.bottom_pattern == "vstripes":
        u = (grid.xs - sk.cx) / (4.0 * sk.hip_half)
        field = _soft_square(u * identity.bottom_pattern_freq + identity.bottom_pattern_phase)
    else:
        return None
    return np.broadcast_to(field, (grid.height, grid.width))


@dataclass(frozen=True)
class BodyGeometry:
    """Where every part of one person is in one image: computed once, read by both renderers.

    parts: part name -> [H, W] float32 visible coverage (after occlusion by the parts in front).
    materials: material name (see MATERIALS) -> [H, W] float32 summed coverage of its parts; only the
        materials drawn in this image are present.
    background: [H, W] float32 coverage of the background (1 - person - occluder).
    rim: [H, W] float32 in [0, 1], 0 on a part's axis and 1 at its outline (for shading).
    patterns: material ("top", "bottom") -> [H, W] float32 in [0, 1], where the garment shows its
        pattern value instead of its base value; solid garments have no entry.
    """

    parts: Mapping[str, np.ndarray]
    materials: Mapping[str, np.ndarray]
    background: np.ndarray
    rim: np.ndarray
    patterns: Mapping[str, np.ndarray]


def _composite_layers(layers: list[_Layer], height: int, width: int) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """Front-to-back 'over' compositing: per-part and per-material weights, background weight, rim."""
    transmit = np.ones((height, width), np.float32)
    rim = np.zeros((height, width), np.float32)
    parts: dict[str, np.ndarray] = {}
    materials: dict[str, np.ndarray] = {}
    for layer in reversed(layers):
        window = layer.window
        weight = layer.alpha * transmit[window]
        transmit[window] *= 1.0 - layer.alpha
        for sums, key in ((parts, layer.part), (materials, layer.material)):
            if key not in sums:
                sums[key] = np.zeros((height, width), np.float32)
            sums[key][window] += weight
        rim[window] += weight * layer.rim
    rim /= np.maximum(1.0 - transmit, 1e-3)
    return parts, materials, transmit, rim


def body_geometry(identity: PersonIdentity, view: PersonView, height: int, width: int) -> BodyGeometry:
    """Compute the coverage of every part and the pattern fields of one image ([H, W] float32 arrays)."""
    grid = _Grid(height, width)
    sk = _skeleton(identity, view, height, width)
    parts, materials, background, rim = _composite_layers(_person_layers(grid, identity, view, sk), height, width)
    patterns = {name: field for name, field in (("top", _top_pattern(identity, grid, sk)),
                                                 ("bottom", _bottom_pattern(identity, grid, sk)))
                if field is not None}
    if view.flip:
        parts, materials, patterns = ({name: a[:, ::-1] for name, a in d.items()} for d in (parts, materials, patterns))
        background, rim = background[:, ::-1], rim[:, ::-1]
    return BodyGeometry(parts=parts, materials=materials, background=background, rim=rim, patterns=patterns)
