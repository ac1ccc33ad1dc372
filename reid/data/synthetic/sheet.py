"""A quick look at a generated tree: `render_contact_sheet` saves a labelled PNG mosaic."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageDraw

from ..io import write_image_atomic
from .scene import CAMERAS
from .writer import _image_path

SHEET_CAMERAS = (1, 2, 4, 5, 3, 6)


def render_contact_sheet(root: str | os.PathLike, out_png: str | os.PathLike, num_ids: int = 8,
                         colors: int | None = 256) -> Path:
    """Save a PNG mosaic of the first image of the first `num_ids` ids: one column per id, one row per
    camera (visible 1, 2, 4, 5 then infrared 3, 6), labelled. Returns the PNG path.

    colors: quantise to a palette of this many colours (keeps the file small); None keeps full RGB.
    """
    root, out_png = Path(root), Path(out_png)
    pids = sorted(int(p.name) for p in (root / "cam1").iterdir() if p.name.isdecimal())[:num_ids]
    if not pids:
        raise ValueError(f"{root / 'cam1'} holds no identity folders")
    with Image.open(_image_path(root, 1, pids[0], 1)) as first:
        tile_w, tile_h = first.size
    label_w, header_h = 48, 14
    sheet = Image.new("RGB", (label_w + tile_w * len(pids), header_h + tile_h * len(SHEET_CAMERAS)), "white")
    draw = ImageDraw.Draw(sheet)
    for col, pid in enumerate(pids):
        draw.text((label_w + col * tile_w + 4, 1), f"{pid:04d}", fill="black")
    for row, camid in enumerate(SHEET_CAMERAS):
        y = header_h + row * tile_h
        draw.text((3, y + tile_h // 2 - 12), f"cam{camid}\n{CAMERAS[camid].modality}", fill="black")
        for col, pid in enumerate(pids):
            with Image.open(_image_path(root, camid, pid, 1)) as tile:
                sheet.paste(tile.convert("RGB"), (label_w + col * tile_w, y))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if colors is not None:
        sheet = sheet.quantize(colors, method=Image.Quantize.FASTOCTREE)
    write_image_atomic(sheet, out_png, optimize=True)
    return out_png
