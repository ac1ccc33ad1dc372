"""Dataset layer: records, loaders for SYSU-MM01 / RegDB / LLCM in their official layouts, image io,
the synthetic SYSU-layout generator."""
from .dataset import VIDataset, summarize_records
from .io import DatasetLayoutError, ImageReadError, read_image, require_dir, require_file, write_image_atomic
from .record import MODALITIES, Record
from .registry import dataset_names, load_dataset
from .synthetic import make_synthetic_sysu

__all__ = [
    "MODALITIES", "Record", "VIDataset", "summarize_records", "load_dataset", "dataset_names",
    "make_synthetic_sysu", "read_image", "write_image_atomic", "require_dir", "require_file",
    "DatasetLayoutError", "ImageReadError",
]
