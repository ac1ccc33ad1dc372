"""`load_dataset(name, root, **options)`: one entry point for every dataset layout."""
from __future__ import annotations

import difflib
from pathlib import Path

from reid.config import DataConfig

from .dataset import VIDataset
from .llcm import LLCM
from .regdb import RegDB
from .synthetic import make_synthetic_sysu, synthetic_tree_complete
from .sysu import SYSUMM01

# The synthetic generator writes a SYSU-MM01-layout tree, so the SYSU-MM01 loader and protocol read it.
DATASETS: dict[str, type[VIDataset]] = {
    "sysu": SYSUMM01,
    "regdb": RegDB,
    "llcm": LLCM,
    "synthetic": SYSUMM01,
}
ALIASES = {"sysu-mm01": "sysu", "sysu_mm01": "sysu", "sysumm01": "sysu"}


def open_dataset(config: DataConfig) -> VIDataset:
    """The dataset a config's `data` section names; for `synthetic`, the tree is generated first when
    `root` holds no complete one yet (`num_ids`, `seed`), so a run needs no download. A complete
    synthetic tree already there is used as it is, whatever parameters wrote it."""
    options = {"trial": config.trial} if config.name.lower() == "regdb" else {}
    if config.name.lower() == "synthetic" and not synthetic_tree_complete(config.root):
        make_synthetic_sysu(config.root, num_ids=config.num_ids, seed=config.seed, progress=True)
    return load_dataset(config.name, config.root, **options)


def dataset_names() -> list[str]:
    """The names `load_dataset` accepts."""
    return sorted(DATASETS)


def load_dataset(name: str, root: str | Path, **options) -> VIDataset:
    """Load a dataset from its official layout under `root`.

    name: "sysu" (also "synthetic": a tree written by `make_synthetic_sysu`), "regdb" or "llcm".
    options: loader options, e.g. `trial=1..10` for RegDB.
    Returns an object with `.train: list[Record]` and `.test_split(**protocol) -> (query, gallery)`.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        close = difflib.get_close_matches(key, list(DATASETS) + list(ALIASES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}: choose one of {dataset_names()}{hint}")
    return DATASETS[key](root, **options)
