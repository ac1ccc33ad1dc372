"""Checkpoints: atomic save, `weights_only=True` load, clear errors for foreign, truncated,
other-version or mismatched files.

A checkpoint is a dict {"format", "version", "kind", "config", "step", "state"}; `state` holds
everything needed to resume (model and optimizer state dicts, schedulers, RNG states, ...), built
only from tensors, numbers, strings, lists and dicts so that `torch.load(weights_only=True)` reads it.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

FORMAT = "vireid-checkpoint"
VERSION = 1

# in torch's message for a payload the weights-only unpickler refuses: the refused class or function,
# and the unpickler's own reason
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(\S[^\n]*)")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file (and key) and what is wrong."""


def save_checkpoint(path: str | Path, *, kind: str, state: Mapping[str, Any], config: Mapping | None = None,
                    step: int = 0) -> Path:
    """Write a checkpoint atomically: a temp file in the same folder, fsync, then `os.replace`.

    kind: what trained it ("cyclegan", "reid", ...); checked again on load.
    state: the training state, weights_only-safe (tensors, numbers, str, lists, dicts).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, "config": dict(config or {}),
               "step": int(step), "state": dict(state)}
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def load_checkpoint(path: str | Path, *, kind: str | None = None, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`, with `torch.load(weights_only=True)`.

    kind: when given, the checkpoint must have been written for that kind.
    Raises CheckpointError naming the file when it is missing, truncated, not one of ours,
    of another format version or of another kind.
    """
    path = Path(path)
    payload = read_weights_only(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vireid checkpoint (no format={FORMAT!r} entry); "
                              "plain state dicts can be loaded with torch.load")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {payload.get('version')!r}; "
                              f"this toolkit reads version {VERSION}")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path} is a {payload.get('kind')!r} checkpoint, expected a {kind!r} checkpoint")
    return payload


def read_weights_only(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(path, weights_only=True)`: whatever the file holds (a checkpoint, a plain state dict); a
    CheckpointError naming the file when it is missing, truncated, corrupt or holds other pickled objects."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file{_checkpoint_inside(path)}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged files (KeyError, EOFError, ...)
        raise _load_error(path, error) from None


def _checkpoint_inside(folder: Path) -> str:
    """A hint naming the checkpoint a run folder (or its checkpoints/ folder) holds, or ""."""
    for candidate in (folder / "checkpoints" / "last.pt", folder / "last.pt"):
        if candidate.is_file():
            return f" (did you mean {candidate}?)"
    return ""


def _load_error(path: Path, error: Exception) -> CheckpointError:
    """The CheckpointError for what `torch.load(weights_only=True)` raised on `path`. torch's own message
    suggests retrying with weights_only=False, which would run code the file names: never passed on."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError):
        refused = _REFUSED_GLOBAL.search(text)
        if refused:
            return CheckpointError(f"{path} holds objects other than tensors and plain containers (numbers, "
                                   f"strings, lists, dicts): a pickled {refused.group(1)}; it will not be loaded, "
                                   "since unpickling it could run code")
        detail = _UNPICKLER_DETAIL.search(text)
        reason = f"unpickler: {detail.group(1)}" if detail else "refused by the weights-only unpickler"
    else:
        reason = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return CheckpointError(f"cannot read checkpoint {path}: the file is truncated, corrupt or not a "
                           f"weights-only torch file ({reason})")


def require_state(checkpoint: Mapping, key: str, path: str | Path) -> Any:
    """Return `checkpoint["state"][key]`, or raise CheckpointError naming the file and the missing key."""
    state = checkpoint.get("state", {})
    if key not in state:
        raise CheckpointError(f"{path}: checkpoint has no state {key!r} (it has {sorted(state)})")
    return state[key]


def load_module_state(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, name: str,
                      path: str | Path) -> None:
    """Load `state_dict` into `module` strictly, or raise CheckpointError listing the missing,
    unexpected and shape-mismatched keys (the usual sign of a checkpoint from another architecture)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(own[key].shape)}"
                  for key in own if key in state_dict and tuple(own[key].shape) != tuple(state_dict[key].shape)]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys {_preview(missing)}")
        if unexpected:
            problems.append(f"unexpected keys {_preview(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches {_preview(mismatched)}")
        raise CheckpointError(f"{path}: {name} does not match the model: " + "; ".join(problems))
    module.load_state_dict(state_dict)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}] ({len(items)})"
