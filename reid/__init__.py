"""Unsupervised visible-infrared person re-identification: data, models, clustering, training, evaluation.

The stable Python API is what this package exports (`__all__`, docs/api.md); every other module is the toolkit's
inside and may change between versions. The names load on first use, so `import reid.config` stays light.
"""
from __future__ import annotations

from .lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "FeatureExtractor": "reid.api", "rank": "reid.api", "evaluate_features": "reid.api",
    "FeatureSet": "reid.features", "load_dataset": "reid.data", "Record": "reid.data",
    "make_synthetic_sysu": "reid.data",
}
__all__ = [*_EXPORTS, "__version__"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
