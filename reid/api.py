"""The Python API for using a trained ReID model: embed images, rank a gallery, evaluate features.

    import reid
    extractor = reid.FeatureExtractor("runs/reid/synthetic/checkpoints/last.pt", device="auto")
    probes = extractor(["a.jpg", "b.jpg"], modality="vis")        # [2, D] float32, L2-normalised
    gallery = extractor.embed_folder("cctv/", modality="ir")        # FeatureSet: .records, .features
    indices, similarities = reid.rank(probes, gallery, top_k=5)     # [2, 5] gallery rows, best first
    result = reid.evaluate_features(test_features, reid.load_dataset("sysu", "/data/SYSU-MM01"))

The features are those `vireid evaluate` ranks with: each image resized (bilinear) to the model's input size,
normalised with the ImageNet mean / std, through the stem of its modality, the L2-normalised BN-neck feature
averaged with that of the horizontally flipped image and normalised again (`flip=False`: the image alone).
"""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

from .data import MODALITIES, VIDataset, read_image
from .data.transforms import build_test_transform
from .evaluation import evaluate_protocol
from .evaluation.protocols import ProtocolResult
from .features import FeatureSet, embed_batch
from .models import load_model_checkpoint
from .runtime import autocast, resolve_device
from .search import extract_folder, rank_gallery

ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]


class FeatureExtractor:
    """A ReID checkpoint's model, ready to embed images of either modality (torchreid's `FeatureExtractor` role).

    checkpoint: a `vireid train` checkpoint (or any "reid" checkpoint); device: "auto" | "cpu" | "cuda" |
    "cuda:N"; batch_size: images per forward pass; flip: average with the flipped image (as evaluation does);
    bf16: bf16 autocast on CUDA (ignored on the CPU).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, device: str = "auto", batch_size: int = 64,
                 flip: bool = True, bf16: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model, self.model_config = load_model_checkpoint(checkpoint, self.device)
        self.batch_size, self.flip, self.bf16 = batch_size, flip, bf16
        self.transform = build_test_transform(self.model_config.height, self.model_config.width)

    @property
    def feature_dim(self) -> int:
        """D, the size of a feature."""
        return self.model.feature_dim

    def __call__(self, images: Sequence[ImageInput] | torch.Tensor, modality: str | Sequence[str]) -> torch.Tensor:
        """Features [B, D] float32 on the CPU, L2-normalised, row i for images[i].

        images: image files, PIL images or [H, W, 3] / [H, W] uint8 arrays (resized and normalised here), or a
        tensor [B, 3, height, width] already so prepared (`reid.data.transforms.build_test_transform`);
        modality: "vis" or "ir" for every image, or one per image.
        """
        is_ir = _is_ir(modality, len(images))
        batches = []
        with torch.no_grad(), autocast(self.device, self.bf16):
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                batch = chunk if isinstance(chunk, torch.Tensor) else torch.stack([self._prepared(i) for i in chunk])
                flags = is_ir[start:start + self.batch_size].to(self.device)
                batches.append(embed_batch(self.model, batch.to(self.device), flags, self.flip).float().cpu())
        return torch.cat(batches) if batches else torch.empty(0, self.feature_dim)

    def embed_folder(self, folder: str | os.PathLike, modality: str, *, num_workers: int = 0) -> FeatureSet:
        """Every image under `folder` (recursively; .jpg .jpeg .png .bmp, sorted), one modality: a FeatureSet
        (records with ids from the folder names where they give them, features [N, D]); `.save(path, root=folder)`
        writes the file `vireid extract` writes."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        return extract_folder(self.model, folder, modality, self.device, height=self.model_config.height,
                              width=self.model_config.width, batch_size=self.batch_size, num_workers=num_workers,
                              flip=self.flip, bf16=self.bf16, what=str(folder))

    def _prepared(self, image: ImageInput) -> torch.Tensor:
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        if not isinstance(image, Image.Image):
            raise TypeError(f"an image must be a file path, a PIL image or a uint8 array, got {type(image).__name__}")
        return self.transform(image.convert("RGB"))


def rank(query: torch.Tensor | FeatureSet, gallery: torch.Tensor | FeatureSet, top_k: int = 10
         ) -> tuple[np.ndarray, np.ndarray]:
    """The top_k gallery rows of every query by cosine similarity, best first: (indices [Q, k] int64,
    similarities [Q, k] float32), k = min(top_k, G). query: [Q, D] features or a FeatureSet; gallery: [G, D] or a
    FeatureSet. Computed in blocks of queries, so Q x G is never held at once."""
    return rank_gallery(_features(query), _features(gallery), top_k)


def evaluate_features(features: FeatureSet | str | os.PathLike, dataset: VIDataset, *,
                      settings: list[str] | None = None, trials: int = 10) -> ProtocolResult:
    """The dataset's official protocol (`vireid evaluate`) on saved features: a FeatureSet holding every test image,
    or a features file (`vireid extract`, `vireid evaluate --save-features`) whose paths are relative to the
    dataset's root. Returns a ProtocolResult: `.table()` prints it, `.settings[name].mean()` gives R1 / mAP / ...
    (fractions)."""
    if not isinstance(features, FeatureSet):
        features = FeatureSet.load(features, root=dataset.root)
    return evaluate_protocol(features, dataset, settings=settings, trials=trials)


def _features(source: torch.Tensor | FeatureSet) -> torch.Tensor:
    return source.features if isinstance(source, FeatureSet) else torch.as_tensor(source)


def _is_ir(modality: str | Sequence[str], count: int) -> torch.Tensor:
    """[count] bool: True for infrared rows."""
    modalities = [modality] * count if isinstance(modality, str) else list(modality)
    if len(modalities) != count:
        raise ValueError(f"{len(modalities)} modalities for {count} images")
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown:
        raise ValueError(f"modality must be one of {MODALITIES}, got {unknown[0]!r}")
    return torch.tensor([m == "ir" for m in modalities], dtype=torch.bool)
