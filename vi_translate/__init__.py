"""Visible <-> infrared image translation (CycleGAN): networks, training, dataset translation, metrics.

The stable Python API is what this package exports (`__all__`, docs/api.md); every other module is the toolkit's
inside and may change between versions.
"""
from __future__ import annotations

from reid.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {"Translator": "vi_translate.translator"}
__all__ = [*_EXPORTS, "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
