"""Shared fixtures: a tiny synthetic dataset and a translator trained on it for a couple of steps."""
from __future__ import annotations

from pathlib import Path

import pytest

from reid.data import make_synthetic_sysu
from vi_translate.train import train_translator

from translator_helpers import build_translator_config, tiny_translator_config


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """6 identities, about one image per (id, camera): 20 visible training images, 10 steps per epoch."""
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_sysu(root, num_ids=6, seed=0, images_per_camera=1, height=32, width=16)
    return root


@pytest.fixture(scope="session")
def tiny_translator(tiny_dataset, tmp_path_factory) -> Path:
    """A translator checkpoint trained for 2 steps on `tiny_dataset`."""
    run = tmp_path_factory.mktemp("translator") / "run"
    return train_translator(build_translator_config(tiny_translator_config(tiny_dataset, run, max_steps=2)))
