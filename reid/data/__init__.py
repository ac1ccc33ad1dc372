"""Dataset layer: records, loaders for SYSU-MM01 / RegDB / LLCM in their official layouts and for unlabelled
footage (`folder`), image io, the synthetic SYSU-layout generator."""
from .dataset import VIDataset, summarize_records
from .folder import FolderDataset, NoIdentitiesError
from .io import (DatasetLayoutError, ImageReadError, read_image, relative_path, require_dir, require_file,
                 write_image_atomic)
from .record import MODALITIES, Record
from .registry import dataset_has_identities, dataset_names, load_dataset, open_dataset
from .synthetic import make_synthetic_sysu
from .translated import TranslatedViews

__all__ = [
    "MODALITIES", "Record", "VIDataset", "summarize_records", "load_dataset", "open_dataset", "dataset_names",
    "make_synthetic_sysu", "read_image", "relative_path", "write_image_atomic", "require_dir", "require_file",
    "DatasetLayoutError", "ImageReadError", "TranslatedViews", "FolderDataset", "NoIdentitiesError",
    "dataset_has_identities",
]
