"""Atomic file writes: a reader, or a rerun after a kill, never sees a half-written file."""
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
