"""Atomic file writes: a reader, or a rerun after a kill, never sees a half-written file; and the check, before a
command's work, that its output paths can be written (`check_output_file`, `check_output_folder`)."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o644  # outputs are meant to be shared, whatever the umask


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Create `path` by `write(handle)` into `.<name>.tmp` beside it, then os.replace: a reader never sees a
    half-written file. The temp name is fixed, so the temp file a killed writer left is overwritten and renamed
    by the next write of the same file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """`text` into `path` (UTF-8), atomically (`write_atomically`)."""
    return write_atomically(path, lambda handle: handle.write(text.encode()))


# ------------------------------------------------------------------------------------------------ output paths

class OutputPathError(ValueError):
    """An output path that cannot be written as asked; the message names it and the problem. Raised by
    `check_output_file` / `check_output_folder` before a command starts its work."""


def check_output_folder(path: str | os.PathLike, *, what: str = "--out") -> Path:
    """`path` as a Path, once it is sure a command can write into it: an existing folder, or one that can be
    created (its nearest existing ancestor is a folder). OutputPathError naming `what` and `path` when `path` is a
    file, lies under a file, or the folder to write into is not writable. Nothing is created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is a file, not a folder: give a folder to write into")
    _require_writable_ancestor(path, path, what)
    return path


def check_output_file(path: str | os.PathLike, *, what: str = "--out", overwrite: bool = False,
                      ours: Callable[[Path], bool] | None = None, kind: str = "a file this command wrote") -> Path:
    """`path` as a Path, once it is sure a command may write the file there: not a folder (nor written as one,
    `out/`), its folder existing or creatable and writable, and no file there unless `overwrite` is true or
    `ours(path)` says it is `kind` (an earlier output of the command, which it replaces). OutputPathError naming
    `what` and `path` otherwise. Nothing is created."""
    text = os.fspath(path)
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise OutputPathError(f"{what} {text} is a folder, not a file: give the path of the file to write")
    _require_writable_ancestor(path.parent, path, what)
    if path.exists() and not overwrite and not (ours is not None and ours(path)):
        raise OutputPathError(f"{what} {path} already exists and is not {kind}: refusing to overwrite it "
                              "(give another path, or pass --overwrite to replace it)")
    return path


def _require_writable_ancestor(folder: Path, path: Path, what: str) -> None:
    """OutputPathError unless `folder` is, or can be created as, a writable folder: its nearest existing ancestor
    must be a folder that this process may create entries in."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise OutputPathError(f"{what} {path}: {existing} is a file, not a folder, so nothing can be written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: no permission to write in {existing}")
