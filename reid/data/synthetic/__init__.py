"""Procedural SYSU-MM01-layout dataset: persons seen by four visible and two infrared cameras.

Identity lives in body shape, clothing patterns, accessories and clothing colours. The visible
renderer shows colours under per-camera lighting; the infrared renderer is thermal and never reads a
colour: skin is warm, clothing intensity comes from a per-identity fabric emissivity drawn independently
of its colour, and patterns appear as emissivity contrast. Cross-modal matching is therefore possible
from shape, pattern and accessories, but not from colour.

Modules: `identity` (persons and views), `shapes` (pixel-grid primitives), `body` (per-image
geometry), `scene` (cameras and backgrounds), `render` (palettes and sensor), `seeds` (random
streams and id split), `writer` (the dataset tree), `sheet` (contact sheet).
"""
from dataclasses import replace

from .body import MATERIALS, BodyGeometry, body_geometry
from .identity import PersonIdentity, PersonView, sample_identity, sample_view
from .render import Palette, infrared_palette, render_image, render_infrared, render_visible, visible_palette
from .scene import CAMERAS, CameraSpec, SceneBand, scene_background
from .seeds import identity_rng, image_count, split_ids, view_rng
from .sheet import render_contact_sheet
from .writer import make_synthetic_sysu, synthetic_tree_complete

__all__ = [
    "PersonIdentity", "PersonView", "BodyGeometry", "Palette", "CameraSpec", "SceneBand", "CAMERAS", "MATERIALS",
    "make_synthetic_sysu", "synthetic_tree_complete", "render_contact_sheet", "sample_identity", "sample_view", "identity_rng", "view_rng",
    "image_count", "split_ids", "body_geometry", "scene_background", "visible_palette", "infrared_palette",
    "render_visible", "render_infrared", "render_image", "replace",
]
