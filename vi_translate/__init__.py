"""Visible <-> infrared image translation (CycleGAN): networks, training, dataset translation, metrics.

The stable Python API is what this package exports (`__all__`, docs/api.md); every other module is the toolkit's
inside and may change between versions.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {"Translator": "vi_translate.translator"}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vi_translate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
