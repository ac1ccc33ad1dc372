"""Anti-aliased shape primitives on a pixel grid: capsules, ellipses and trapezoids as `_Layer`s
(coverage and rim inside a bounding window)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


def _unit(values: np.ndarray) -> np.ndarray:
    """`values` clipped to [0, 1] in place (np.clip's dispatch costs more than the work on small arrays)."""
    return np.minimum(np.maximum(values, 0.0, out=values), 1.0, out=values)


class _Grid:
    """Pixel-centre coordinates of an [H, W] image; shapes are evaluated inside bounding windows."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.ys = np.arange(height, dtype=np.float32)[:, None] + 0.5
        self.xs = np.arange(width, dtype=np.float32)[None, :] + 0.5

    def window(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
        """Row and column slices covering [x0, x1] x [y0, y1] plus a one-pixel margin (may be empty)."""
        def span(low: float, high: float, size: int) -> slice:
            return slice(min(max(math.floor(low) - 1, 0), size), min(max(math.ceil(high) + 1, 0), size))

        return span(y0, y1, self.height), span(x0, x1, self.width)


@dataclass(frozen=True)
class _Layer:
    """One drawn part: coverage `alpha` and normalised distance from its axis `rim`, both [h, w] in a window."""

    part: str
    material: str
    window: tuple[slice, slice]
    alpha: np.ndarray
    rim: np.ndarray


def _capsule(grid: _Grid, part: str, material: str, p0: tuple[float, float], p1: tuple[float, float],
             r0: float, r1: float | None = None) -> _Layer:
    """A segment p0-p1 (x, y pixels) thickened to radius r0 at p0 tapering to r1 at p1."""
    r1 = r0 if r1 is None else r1
    rmax = max(r0, r1)
    window = grid.window(min(p0[0], p1[0]) - rmax, max(p0[0], p1[0]) + rmax,
                         min(p0[1], p1[1]) - rmax, max(p0[1], p1[1]) + rmax)
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    px, py = grid.xs[:, window[1]] - p0[0], grid.ys[window[0]] - p0[1]
    t = _unit((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-6))
    dist = np.hypot(px - t * dx, py - t * dy)
    radius = r0 + (r1 - r0) * t
    return _Layer(part, material, window, _unit(0.5 + radius - dist), _unit(dist / radius))


def _ellipse(grid: _Grid, part: str, material: str, centre: tuple[float, float], rx: float, ry: float) -> _Layer:
    """An axis-aligned ellipse; its rim is the normalised elliptic radius."""
    cx, cy = centre
    window = grid.window(cx - rx, cx + rx, cy - ry, cy + ry)
    k = np.hypot((grid.xs[:, window[1]] - cx) / rx, (grid.ys[window[0]] - cy) / ry)
    return _Layer(part, material, window, _unit(0.5 - (k - 1.0) * min(rx, ry)), _unit(k))


def _trapezoid(grid: _Grid, part: str, material: str, cx: float, y0: float, y1: float,
               half0: float, half1: float) -> _Layer:
    """A trapezoid symmetric about x = cx, half width half0 at row y0 and half1 at row y1 (y0 < y1)."""
    window = grid.window(cx - max(half0, half1), cx + max(half0, half1), y0, y1)
    ys, ax = grid.ys[window[0]], np.abs(grid.xs[:, window[1]] - cx)
    slope = (half1 - half0) / max(y1 - y0, 1e-6)
    half = half0 + slope * (ys - y0)
    side = (ax - half) / math.sqrt(1.0 + slope * slope)
    sdf = np.maximum(side, np.maximum(y0 - ys, ys - y1))
    return _Layer(part, material, window, _unit(0.5 - sdf), _unit(ax / np.maximum(half, 1e-3)))


def _keep_above(grid: _Grid, layer: _Layer, y_cut: float) -> _Layer:
    """`layer` restricted to rows above y_cut (anti-aliased)."""
    ys = grid.ys[layer.window[0]]
    return replace(layer, alpha=layer.alpha * _unit(0.5 + y_cut - ys))
