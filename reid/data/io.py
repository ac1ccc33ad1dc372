"""Image and file reading with errors that name the file and say what is wrong."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image

FILE_MODE = 0o644  # mkstemp creates 0600 files; written outputs are meant to be shared


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder or index file is missing or malformed; the message names the expected path."""


class ImageReadError(OSError):
    """An image file cannot be opened or decoded; `.path` names it."""

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


def relative_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to `root`, in POSIX form; ValueError when it lies outside `root`."""
    absolute, base = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if not absolute.is_relative_to(base):
        raise ValueError(f"{path} is not inside the dataset root {root}")
    return absolute.relative_to(base).as_posix()


def read_image(path: str | os.PathLike, mode: str = "RGB") -> Image.Image:
    """Open and fully decode an image, converted to `mode` ("RGB" or "L").

    Raises ImageReadError naming the file when it is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(path, f"{type(error).__name__}: {error}") from error


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
