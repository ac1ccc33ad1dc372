"""`load_dataset(name, root, **options)`: one entry point for every dataset layout."""
from __future__ import annotations

import difflib
from pathlib import Path

from reid.config import DataConfig

from .dataset import VIDataset
from .folder import FolderDataset
from .llcm import LLCM
from .regdb import RegDB
from .synthetic import check_synthetic_options, make_synthetic_sysu, synthetic_tree_complete
from .sysu import SYSUMM01

# the `data` keys that are `make_synthetic_sysu` options (None in a config: the generator's default)
SYNTHETIC_OPTIONS = ("num_ids", "seed", "images_per_camera", "test_fraction", "val_fraction")

# The synthetic generator writes a SYSU-MM01-layout tree, so the SYSU-MM01 loader and protocol read it.
DATASETS: dict[str, type[VIDataset]] = {
    "sysu": SYSUMM01,
    "regdb": RegDB,
    "llcm": LLCM,
    "synthetic": SYSUMM01,
    "folder": FolderDataset,  # unlabelled footage, ROOT/vis/... and ROOT/ir/...: no identities, no test split
}
ALIASES = {"sysu-mm01": "sysu", "sysu_mm01": "sysu", "sysumm01": "sysu"}


def open_dataset(config: DataConfig) -> VIDataset:
    """The dataset a config's `data` section names; for `synthetic`, the tree is generated first when
    `root` holds no complete one yet (`num_ids`, `seed`, `images_per_camera`, `test_fraction`, `val_fraction`;
    the generator's defaults where None), so a run needs no download; a complete tree that records other
    values of the options the config sets is an error naming them."""
    options = {"trial": config.trial} if config.name.lower() == "regdb" else {}
    if config.evaluate_on != "test":
        if config.name.lower() not in ("sysu", "synthetic"):
            raise ValueError(f"data.evaluate_on={config.evaluate_on!r}: only SYSU-MM01-layout datasets (sysu, "
                             f"synthetic) have held-out val ids; {config.name} evaluates on its test ids")
        options["evaluate_on"] = config.evaluate_on
    if config.name.lower() == "synthetic":
        given = {key: getattr(config, key) for key in SYNTHETIC_OPTIONS if getattr(config, key) is not None}
        if synthetic_tree_complete(config.root):
            check_synthetic_options(config.root, given)
        else:
            make_synthetic_sysu(config.root, **given, progress=True)
    return load_dataset(config.name, config.root, **options)


def dataset_names() -> list[str]:
    """The names `load_dataset` accepts."""
    return sorted(DATASETS)


def dataset_has_identities(name: str) -> bool:
    """Whether dataset `name` has person identities (`VIDataset.has_identities`: False for `folder`), read from
    its loader without opening anything; ValueError for an unknown name, as `load_dataset`."""
    return dataset_class(name).has_identities


def dataset_class(name: str) -> type[VIDataset]:
    """The loader of dataset `name` (aliases accepted); ValueError naming the choices for an unknown name."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        close = difflib.get_close_matches(key, list(DATASETS) + list(ALIASES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}: choose one of {dataset_names()}{hint}")
    return DATASETS[key]


def load_dataset(name: str, root: str | Path, **options) -> VIDataset:
    """Load a dataset from its official layout under `root`.

    name: "sysu" (also "synthetic": a tree written by `make_synthetic_sysu`), "regdb", "llcm", or "folder"
    (unlabelled footage, ROOT/vis/... and ROOT/ir/...: `reid.data.folder`).
    options: loader options, e.g. `trial=1..10` for RegDB.
    Returns an object with `.train: list[Record]` and `.test_split(**protocol) -> (query, gallery)`.
    """
    return dataset_class(name)(root, **options)
