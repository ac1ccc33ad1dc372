"""Procedural SYSU-MM01-layout dataset: persons seen by four visible and two infrared cameras.

Identity lives in body shape, clothing cut, patterns, a chest print, accessories and clothing colours.
The visible renderer shows colours under per-camera lighting; the infrared renderer never reads a hue:
skin is bright, and a garment's grey level mixes a per-identity fabric emissivity (drawn independently
of its colour) with its visible luminance, so patterns and prints show in both modalities. Cross-modal
matching is therefore possible from shape, pattern, print, accessories and (partly) brightness, but
not from hue.

For evaluation only, every image of the val and test ids also has a registered partner in the other
modality (`render_counterpart`: same person, pose and scene through the camera's `counterpart_camera`),
written under ROOT/paired/vis and ROOT/paired/ir, outside the SYSU-MM01 layout the loader reads.

Modules: `identity` (persons and views), `shapes` (pixel-grid primitives), `body` (per-image
geometry), `scene` (cameras, counterpart cameras and backgrounds), `render` (palettes and sensor),
`seeds` (random streams and id split), `writer` (the dataset tree and its pairs), `sheet` (contact sheet).
"""
from dataclasses import replace

from .body import MATERIALS, BodyGeometry, body_geometry
from .identity import PersonIdentity, PersonView, sample_identity, sample_view
from .render import (Palette, infrared_palette, render_counterpart, render_image, render_infrared, render_visible,
                     visible_palette)
from .scene import (CAMERAS, INFRARED_CAMERA_OF_SETTING, MIRRORED_VISIBLE_CAMERA, CameraSpec, SceneBand,
                    counterpart_camera, scene_background)
from .seeds import identity_rng, image_count, split_ids, view_rng
from .sheet import render_contact_sheet
from .writer import PAIRED_DIR, check_synthetic_options, make_synthetic_sysu, pair_name, synthetic_tree_complete

__all__ = [
    "PersonIdentity", "PersonView", "BodyGeometry", "Palette", "CameraSpec", "SceneBand", "CAMERAS", "MATERIALS",
    "make_synthetic_sysu", "synthetic_tree_complete", "check_synthetic_options", "render_contact_sheet", "sample_identity", "sample_view", "identity_rng", "view_rng",
    "image_count", "split_ids", "body_geometry", "scene_background", "visible_palette", "infrared_palette",
    "render_visible", "render_infrared", "render_image", "render_counterpart", "counterpart_camera",
    "INFRARED_CAMERA_OF_SETTING", "MIRRORED_VISIBLE_CAMERA", "PAIRED_DIR", "pair_name", "replace",
]
