"""Image and file reading with errors that name the file and say what is wrong."""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

FILE_MODE = 0o644  # mkstemp creates 0600 files; written outputs are meant to be shared
READ_MODES = ("RGB", "L")
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
NO_FIXED_RANGE_MODES = {"I": "32-bit integer pixels", "F": "32-bit float pixels"}
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

T = TypeVar("T")
logger = logging.getLogger(__name__)


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder or index file is missing or malformed; the message names the expected path."""


class ImageReadError(OSError):
    """An image file cannot be opened or decoded; `.path` names it (None when rebuilt from a message alone:
    a DataLoader re-raising a worker's error, or `raise_image_errors`, whose message still names it)."""

    def __init__(self, path: str | os.PathLike, reason: str | None = None) -> None:
        if reason is None:  # rebuilt from its message alone: how DataLoader workers re-raise errors
            self.path, self.reason = None, str(path)
            super().__init__(str(path))
            return
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")

    def __reduce__(self):
        """Rebuild from (path, reason) when pickled."""
        return type(self), (self.path, self.reason) if self.path is not None else (self.reason,)


# how a worker's traceback text names the error, just before its message
_WORKER_MARKER = f"{ImageReadError.__module__}.{ImageReadError.__qualname__}: "


class UnsupportedPixelsError(ValueError):
    """Decoded pixels that cannot be turned into 8-bit RGB / L without inventing values; read_image names the file."""


def raise_image_errors(batches: Iterable[T]) -> Iterator[T]:
    """Yield from `batches` (e.g. a DataLoader); an ImageReadError re-raised from a loader worker, whose
    message is the worker's whole traceback, is raised again as the worker's one-line message."""
    try:
        yield from batches
    except ImageReadError as error:
        one_line = _worker_message(error)
        if one_line is None:
            raise
        raise ImageReadError(one_line) from None


def _worker_message(error: ImageReadError) -> str | None:
    """The message the worker's ImageReadError had, from the traceback text a DataLoader re-raises it
    with; None when `error` is not such a re-raise."""
    _, marker, message = error.reason.rpartition(_WORKER_MARKER)
    if not marker or not message.strip():
        return None
    return message.strip()


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """Return `path` as a Path, or raise DatasetLayoutError saying which folder was expected."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetLayoutError(f"{what}: expected a folder at {path}, but it does not exist")
    return path


def require_file(path: str | os.PathLike, what: str) -> Path:
    """Return `path` as a Path, or raise DatasetLayoutError saying which file was expected."""
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"{what}: expected a file at {path}, but it does not exist")
    return path


def require_listed(items: list[T], path: str | os.PathLike, what: str) -> list[T]:
    """Return `items` as read from the file at `path`, or raise DatasetLayoutError naming it when it lists
    nothing (`what`: what it should list, e.g. "test ids")."""
    if not items:
        raise DatasetLayoutError(f"{path} lists no {what}: the file is empty or holds no entries")
    return items


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to `root`, in POSIX form; ValueError when it lies outside `root`."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if not absolute.is_relative_to(base):
        raise ValueError(f"{path} is not inside the dataset root {root}")
    return absolute.relative_to(base).as_posix()


def read_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Open and fully decode an image, converted to `mode` ("RGB" or "L") by `convert_image`.

    Raises ImageReadError naming the file when it is missing, truncated, not an image, or has pixels
    `convert_image` refuses (no fixed intensity range, transparency).
    """
    if mode not in READ_MODES:
        raise ValueError(f"read_image mode must be one of {READ_MODES}, got {mode!r}")
    try:
        with open_image(path) as image:
            image.load()
            return convert_image(image, mode)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except UnsupportedPixelsError as error:
        raise ImageReadError(path, str(error)) from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(path, f"{error} PIL refuses images of over twice PIL.Image.MAX_IMAGE_PIXELS; raise "
                                   "that limit if the image is genuine") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"{type(error).__name__}: {error}") from error


def open_image(path: str | os.PathLike) -> Image.Image:
    """`Image.open(path)`, with PIL's DecompressionBombWarning (an image above PIL.Image.MAX_IMAGE_PIXELS, which
    names no file) logged as a warning naming the file; other warnings are passed on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        image = Image.open(path)
    for warning in caught:
        if issubclass(warning.category, Image.DecompressionBombWarning):
            logger.warning("%s: %d x %d pixels, more than PIL's decompression-bomb limit of %d "
                           "(PIL.Image.MAX_IMAGE_PIXELS); reading it anyway", path, image.width, image.height,
                           Image.MAX_IMAGE_PIXELS)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return image


def convert_image(image: Image.Image, mode: str) -> Image.Image:
    """`image` (as opened by PIL) as 8-bit `mode` ("RGB" or "L"), keeping absolute intensities.

    16-bit grey (I;16*, and 16-bit PGM, which PIL opens as I on a 0..65535 scale) is divided by 257:
    0..65535 onto 0..255 with one scale for every image, so intensities stay comparable across images
    (a per-image min-max stretch would make a cold infrared frame as bright as a hot one). An alpha
    channel is dropped when every pixel is opaque. Raises UnsupportedPixelsError for 32-bit integer or
    float pixels (no fixed range) and for see-through pixels (what they show depends on a background).
    """
    if _is_sixteen_bit(image):
        image = sixteen_to_eight_bit(image)
    elif image.mode in NO_FIXED_RANGE_MODES:
        raise UnsupportedPixelsError(
            f"mode {image.mode} ({NO_FIXED_RANGE_MODES[image.mode]}) has no fixed intensity range; "
            "save it as an 8-bit or 16-bit image")
    elif _has_alpha(image):
        image = _drop_opaque_alpha(image)
    return image.convert(mode)


def sixteen_to_eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grey image (values 0..65535) as mode L: round(value / 257), so 65535 -> 255, 257 -> 1."""
    values = np.asarray(image).astype(np.uint32)
    return Image.fromarray(((values + 128) // 257).astype(np.uint8), "L")


def _is_sixteen_bit(image: Image.Image) -> bool:
    """Whether `image` holds 16-bit grey values: mode I;16*, or a PGM with maxval > 255 (PIL: mode I, 0..65535)."""
    return image.mode in SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PPM")


def _has_alpha(image: Image.Image) -> bool:
    """Whether `image` may have see-through pixels: an alpha channel, or a palette / colour-key transparency."""
    return image.mode in ALPHA_MODES or "transparency" in image.info


def _drop_opaque_alpha(image: Image.Image) -> Image.Image:
    """`image` as RGBA or LA whose alpha `convert` may drop; UnsupportedPixelsError when a pixel is not opaque."""
    mode = image.mode
    if mode not in ("RGBA", "LA"):
        image = image.convert("RGBA")  # palette / colour-key transparency and premultiplied alpha as straight alpha
    lowest_alpha = image.getchannel("A").getextrema()[0]
    if lowest_alpha < 255:
        raise UnsupportedPixelsError(
            f"mode {mode} with see-through pixels (alpha down to {lowest_alpha}); what they show depends on a "
            "background, so flatten the image onto one first")
    return image


def write_image_atomic(image: Image.Image, path: str | os.PathLike, **save_options) -> None:
    """Save `image` to `path` via a temporary file in the same folder and `os.replace`.

    A reader never sees a half-written file; a crash leaves at most a stray `.tmp` file.
    The format follows the suffix of `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"cannot tell the image format of {path} from its suffix")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=image_format, **save_options)
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
