"""Helpers shared by the translator tests: a tiny translator config."""
from __future__ import annotations

from pathlib import Path

import yaml

from reid.config import load_config
from vi_translate.config import TranslatorConfig


def tiny_translator_config(data_root: Path, output_dir: Path, **train) -> dict:
    """A translator small enough to train a step in well under a second (32x16 crops)."""
    return {
        "data": {"name": "synthetic", "root": str(data_root)},
        "image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
        "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
        "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "log_every": 1, "sample_every": 3,
                  "checkpoint_every": 3, "num_samples": 2, **train},
        "runtime": {"device": "cpu", "workers": 0, "seed": 5},
        "output_dir": str(output_dir),
    }


def build_translator_config(data: dict) -> TranslatorConfig:
    path = Path(data["output_dir"]).parent / f"{Path(data['output_dir']).name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(TranslatorConfig, path)
