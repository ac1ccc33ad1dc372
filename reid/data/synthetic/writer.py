"""The dataset tree: `make_synthetic_sysu` writes cam1..cam6 images, exp/ id files and, for the val and test
ids only, the evaluation pairs under paired/; records its parameters in synthetic.json, resumes an
interrupted tree and refuses a foreign or mismatched root."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from reid.runtime import progress

from ..io import write_image_atomic
from .identity import PersonIdentity, sample_identity, sample_view
from .render import render_counterpart, render_image
from .scene import CAMERAS
from .seeds import identity_rng, image_count, split_ids, view_rng

logger = logging.getLogger(__name__)

# 2: chest prints, bolder patterns, luminance in infrared, sharper infrared cameras;
# 3: paired/ (each val / test image and its rendered other modality)
FORMAT_VERSION = 3
# versions whose images are those of FORMAT_VERSION (a tree of one is upgraded in place: 2 lacks only paired/)
UPGRADABLE_VERSIONS = (2,)
MARKER_NAME = "synthetic.json"
JPEG_QUALITY = 90
PAIRED_DIR = "paired"  # ROOT/paired/{vis,ir}/cam<c>_<pid:04d>_<n:04d>.jpg: evaluation only, never read by a loader
PAIRED_SPLITS = ("val", "test")  # the ids whose images get a pair; never the training ids


def _image_path(root: Path, camid: int, pid: int, index: int) -> Path:
    """`root/cam<camid>/<pid:04d>/<index:04d>.jpg`."""
    return root / f"cam{camid}" / f"{pid:04d}" / f"{index:04d}.jpg"


def pair_name(camid: int, pid: int, index: int) -> str:
    """The file name of the pair of image `index` of `pid` in camera `camid`: cam<c>_<pid:04d>_<n:04d>.jpg."""
    return f"cam{camid}_{pid:04d}_{index:04d}.jpg"


def _pair_paths(root: Path, camid: int, pid: int, index: int) -> tuple[Path, Path]:
    """(the copy of the image, its rendered counterpart): root/paired/<the camera's modality>/<name> and
    root/paired/<the other modality>/<name>."""
    own = CAMERAS[camid].modality
    other = "ir" if own == "vis" else "vis"
    name = pair_name(camid, pid, index)
    return root / PAIRED_DIR / own / name, root / PAIRED_DIR / other / name


def _planned_images(root: Path, params: Mapping[str, Any]) -> Iterator[tuple[int, int, int, Path]]:
    """(pid, camid, index, path) of every image of the tree, in generation order."""
    for pid in range(1, params["num_ids"] + 1):
        for camid in CAMERAS:
            for index in range(1, image_count(params["seed"], pid, camid, params["images_per_camera"]) + 1):
                yield pid, camid, index, _image_path(root, camid, pid, index)


def _write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def synthetic_tree_complete(root: str | os.PathLike) -> bool:
    """Whether `root` holds a synthetic tree whose generation finished (its marker says complete)."""
    marker = Path(root) / MARKER_NAME
    try:
        return bool(json.loads(marker.read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def check_synthetic_options(root: str | os.PathLike, options: Mapping[str, Any]) -> None:
    """Raise ValueError naming every option whose value differs from the one `root/synthetic.json` records
    (a tree of the current generator version is expected)."""
    marker = Path(root) / MARKER_NAME
    recorded = _read_marker(marker)
    if recorded.get("version") in UPGRADABLE_VERSIONS and _without(recorded, "version", "complete") == \
            {**_without(recorded, "version", "complete"), **options}:
        raise ValueError(f"{marker}: a synthetic tree of generator version {recorded['version']} (the same images, "
                         f"without the evaluation pairs of version {FORMAT_VERSION}); upgrade it in place with "
                         f"`vireid data synth --root {root}` and its options, or any run that generates the dataset")
    _refuse_other_parameters(marker, recorded, {"version": FORMAT_VERSION, **options})


def _read_marker(marker: Path) -> dict[str, Any]:
    """The parameters `marker` records; ValueError naming it when it cannot be read."""
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{marker} is not a readable synthetic-tree marker: {error}") from None


def _refuse_other_parameters(marker: Path, recorded: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    """Raise ValueError naming each key of `asked` whose value differs from `recorded`, with both values."""
    differing = [f"{key}: {recorded.get(key)!r} there, {value!r} asked" for key, value in asked.items()
                 if recorded.get(key) != value]
    if differing:
        raise ValueError(f"{marker} records a synthetic tree with other parameters ({'; '.join(differing)}); "
                         "use another root or delete this one")


def _without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in keys}


def _write_marker(root: Path, params: Mapping[str, Any], complete: bool) -> None:
    """Record the parameters and whether every file is written in `root/synthetic.json`."""
    _write_text_atomic(root / MARKER_NAME, json.dumps({**params, "complete": complete}, indent=2) + "\n")


def _check_root(root: Path, params: Mapping[str, Any]) -> bool:
    """Make `root` ready for the tree described by `params`; True when its marker says it is complete.

    A tree of an `UPGRADABLE_VERSIONS` version with the same other parameters is upgraded: its marker is
    rewritten as an incomplete tree of this version, so that the missing files (paired/) are written and its
    images kept. Raises ValueError when root is a file, is a non-empty folder without a marker, or holds a marker
    of other parameters.
    """
    marker = root / MARKER_NAME
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file; make_synthetic_sysu needs a folder")
    if marker.is_file():
        recorded = _read_marker(marker)
        if recorded.get("version") in UPGRADABLE_VERSIONS and _without(recorded, "version", "complete") == \
                _without(params, "version"):
            logger.info("synthetic tree at %s: version %s -> %s (its images are kept; the evaluation pairs are "
                        "added)", root, recorded["version"], params["version"])
            _write_marker(root, params, complete=False)
            return False
        _refuse_other_parameters(marker, recorded, params)
        return bool(recorded.get("complete"))
    if root.is_dir() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty and has no {MARKER_NAME}: refusing to write a synthetic tree into it")
    root.mkdir(parents=True, exist_ok=True)
    _write_marker(root, params, complete=False)
    return False


def _id_files(root: Path, splits: Mapping[str, list[int]], num_ids: int) -> dict[Path, str]:
    """Path -> text of exp/{train,val,test,available}_id.txt: one line of comma-separated ids each."""
    lists = {**splits, "available": list(range(1, num_ids + 1))}
    return {root / "exp" / f"{name}_id.txt": ",".join(str(pid) for pid in ids) + "\n" for name, ids in lists.items()}


def _write_id_files(id_files: Mapping[Path, str]) -> None:
    """Write the id files whose content is missing or different."""
    for path, text in id_files.items():
        if not path.is_file() or path.read_text() != text:
            _write_text_atomic(path, text)


def _remove_stray_temporaries(root: Path) -> None:
    """Delete temporary files left by a run killed while writing."""
    for stray in [*root.glob("cam*/*/.*.tmp"), *root.glob("exp/.*.tmp"), *root.glob(f"{PAIRED_DIR}/*/.*.tmp"),
                  *root.glob(f".{MARKER_NAME}.*.tmp")]:
        stray.unlink(missing_ok=True)


def _validate(params: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first parameter of make_synthetic_sysu that is out of range."""
    for key in ("num_ids", "seed", "images_per_camera", "height", "width"):
        if isinstance(params[key], bool) or not isinstance(params[key], int):
            raise ValueError(f"{key} must be an int, got {params[key]!r}")
    if params["num_ids"] < 2:
        raise ValueError(f"num_ids must be at least 2 (one train and one test id), got {params['num_ids']}")
    if params["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {params['seed']}")
    if params["images_per_camera"] < 1:
        raise ValueError(f"images_per_camera must be >= 1, got {params['images_per_camera']}")
    if params["height"] < 32 or params["width"] < 16:
        raise ValueError(f"images must be at least 32 x 16 pixels, got {params['height']} x {params['width']}")
    fractions = (params["test_fraction"], params["val_fraction"])
    if not all(0.0 <= f < 1.0 for f in fractions) or sum(fractions) >= 1.0:
        raise ValueError(f"test_fraction and val_fraction must lie in [0, 1) and sum below 1, got {fractions}")


def _progress(iterable: Iterator, total: int, enabled: bool) -> Iterator:
    """`iterable`, with a progress bar when enabled (quiet when stderr is not a terminal)."""
    return progress(iterable, total=total, desc="synthetic SYSU-MM01", unit="img") if enabled else iterable


def make_synthetic_sysu(root: str | os.PathLike, num_ids: int = 60, seed: int = 0, *, images_per_camera: int = 4,
                        height: int = 128, width: int = 64, test_fraction: float = 0.3, val_fraction: float = 0.1,
                        progress: bool = False) -> dict[str, Any]:
    """Write a SYSU-MM01-layout tree of synthetic persons under `root` and return its summary.

    Layout: cam1..cam6/<pid:04d>/<n:04d>.jpg (cams 1, 2, 4, 5 visible, 3 and 6 infrared, grey in three
    channels) and exp/{train,val,test,available}_id.txt. Each (id, camera) has images_per_camera - 1 ..
    images_per_camera + 1 images (at least 1). Output is byte-identical for a seed.

    Evaluation pairs, for the val and test ids only: paired/vis/<name> and paired/ir/<name>, name
    cam<c>_<pid:04d>_<n:04d>.jpg, hold image cam<c>/<pid>/<n>.jpg (the same bytes) under its own modality and
    its rendered other modality (`render_counterpart`: same person, view and scene, the camera's
    `counterpart_camera`) under the other. The SYSU-MM01 loader never reads paired/.

    `root/synthetic.json` records the parameters: a complete tree with the same parameters returns at
    once; an interrupted one is resumed (only missing images and pair files are written). Raises ValueError
    when the marker records other parameters (another generator version included), or when root is a non-empty
    folder without a marker.

    Returns {"root", "seed", "num_ids", "train_ids", "val_ids", "test_ids", "images_per_camera"
    (camid -> image count), "total_images", "written" (images written by this call), "pairs" (pairs of
    the tree), "pairs_written" (files under paired/ written by this call, two per new pair)}.
    """
    root = Path(root)
    params = dict(version=FORMAT_VERSION, num_ids=num_ids, seed=seed, images_per_camera=images_per_camera,
                  height=height, width=width, test_fraction=float(test_fraction), val_fraction=float(val_fraction))
    _validate(params)
    complete = _check_root(root, params)
    planned = list(_planned_images(root, params))
    splits = split_ids(num_ids, seed, test_fraction, val_fraction)
    paired_ids = {pid for name in PAIRED_SPLITS for pid in splits[name]}
    id_files = _id_files(root, splits, num_ids)
    jobs = [_job(root, item, item[0] in paired_ids) for item in planned]
    missing = [job for job in jobs if job.missing]
    pairs = sum(job.pair is not None for job in jobs)
    if complete and not missing and all(path.is_file() for path in id_files):
        return _summary(root, params, splits, planned, pairs, written=0, pairs_written=0)
    _remove_stray_temporaries(root)
    _write_id_files(id_files)
    written = sum(job.image in job.missing for job in missing)
    pair_files = sum(len(job.missing) for job in missing) - written
    logger.info("synthetic SYSU-MM01 at %s: writing %d of %d images and %d pair files", root, written, len(planned),
                pair_files)
    _write_images(missing, seed, height, width, progress)
    _write_marker(root, params, complete=True)
    logger.info("synthetic SYSU-MM01 at %s: complete, %d images, %d pairs", root, len(planned), pairs)
    return _summary(root, params, splits, planned, pairs, written=written, pairs_written=pair_files)


@dataclass(frozen=True)
class _Job:
    """The files of one image key (pid, camid, index): the image, its pair (copy, counterpart) or None, and
    which of them are missing."""

    pid: int
    camid: int
    index: int
    image: Path
    pair: tuple[Path, Path] | None
    missing: tuple[Path, ...]


def _job(root: Path, item: tuple[int, int, int, Path], paired: bool) -> _Job:
    """The _Job of a planned image; `paired`: whether its id gets evaluation pairs."""
    pid, camid, index, image = item
    pair = _pair_paths(root, camid, pid, index) if paired else None
    missing = tuple(path for path in (image, *(pair or ())) if not path.is_file())
    return _Job(pid, camid, index, image, pair, missing)


def _write_images(jobs: list[_Job], seed: int, height: int, width: int, progress: bool) -> None:
    """Render and save the missing files of each job as JPEGs; every file depends only on its own key.

    The image and its copy under paired/ are one rendering saved twice (the same bytes); the counterpart is
    rendered only when missing.
    """
    identities: dict[int, PersonIdentity] = {}
    for job in _progress(iter(jobs), len(jobs), progress):
        if job.pid not in identities:
            identities[job.pid] = sample_identity(identity_rng(seed, job.pid))
        person, view = identities[job.pid], sample_view(view_rng(seed, job.pid, job.camid, job.index))
        copy, counterpart = job.pair if job.pair is not None else (None, None)
        own = [path for path in (job.image, copy) if path is not None and path in job.missing]
        if own:
            image = Image.fromarray(render_image(person, view, job.camid, height, width))
            for path in own:
                write_image_atomic(image, path, quality=JPEG_QUALITY)
        if counterpart is not None and counterpart in job.missing:
            pixels = render_counterpart(person, view, job.camid, height, width)
            write_image_atomic(Image.fromarray(pixels), counterpart, quality=JPEG_QUALITY)


def _summary(root: Path, params: Mapping[str, Any], splits: Mapping[str, list[int]],
             planned: list[tuple[int, int, int, Path]], pairs: int, written: int, pairs_written: int) -> dict[str, Any]:
    """The dict make_synthetic_sysu returns."""
    per_camera = {camid: 0 for camid in CAMERAS}
    for _, camid, _, _ in planned:
        per_camera[camid] += 1
    return {"root": str(root), "seed": params["seed"], "num_ids": params["num_ids"],
            "train_ids": splits["train"], "val_ids": splits["val"], "test_ids": splits["test"],
            "images_per_camera": per_camera, "total_images": len(planned), "written": written,
            "pairs": pairs, "pairs_written": pairs_written}
