"""The tiny experiment config the runner tests share: every stage of the joint experiment in seconds on a CPU."""
from __future__ import annotations

from pathlib import Path

import yaml


def tiny_experiment_config(data_root: Path, output_dir: Path, strategies=("joint", "pgm"),
                           **overrides) -> dict:
    """The config dict: a 2-step translator, two ReID stages of one 2-step epoch each; `overrides` replace
    top-level sections."""
    return {
        "data": {"name": "synthetic", "root": str(data_root)},
        "translator": {"image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
                       "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
                       "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "max_steps": 2, "sample_every": 2}},
        "translate": {"batch_size": 8},
        "reid": {"model": {"arch": "tiny", "height": 32, "width": 16},
                 "augment": {"pad": 2},
                 "cluster": {"k1": 6, "k2": 2, "min_samples": 2},
                 "train": {"iterations": 2, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                           "stages": {"intra": {"epochs": 1}, "cross": {"epochs": 1}}},
                 "eval": {"every": 1, "trials": 1, "batch_size": 16}},
        "strategies": list(strategies),
        "runtime": {"device": "cpu", "workers": 0, "log_level": "WARNING"},
        "output_dir": str(output_dir),
    } | overrides


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
