"""Shared test set-up: GPU tests skip without CUDA; paths to the real index files beside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_FORMATS = Path(__file__).resolve().parents[1].parent / "shared" / "formats"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def shared_formats() -> Path:
    """The real index files in ../shared/formats; the test skips when they are absent."""
    if not SHARED_FORMATS.is_dir():
        pytest.skip(f"real index files not found at {SHARED_FORMATS}")
    return SHARED_FORMATS
