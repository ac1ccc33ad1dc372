"""Exact k-nearest-neighbour search, by inner product or by L2 distance, with faiss, in bounded memory."""
from __future__ import annotations

import logging

try:
    import faiss
except ModuleNotFoundError as error:
    raise ModuleNotFoundError("faiss is not installed: install one build, pip install -e '.[cpu]' or "
                              "pip install -e '.[gpu]' (make test / make demo do it)") from error
import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def l2_normalize(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    """features: [N, D] -> float32 tensor [N, D] with unit rows, on the input's device."""
    features = torch.as_tensor(features)
    return F.normalize(features.float(), dim=1)


def faiss_has_gpu() -> bool:
    """Whether the installed faiss is a GPU build with a visible GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def knn(features: torch.Tensor | np.ndarray, k: int, *, batch_size: int = 8192, metric: str = "ip"
        ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row among all rows.

    features: [N, D]; metric "ip": by inner product (cosine similarity for L2-normalised rows), "l2": by
    Euclidean distance (faiss IndexFlatL2, as cluster-contrast's `compute_jaccard_distance` searches).
    Returns (scores [N, k] float32, indices [N, k] int64), each row nearest first: similarities for "ip",
    squared distances for "l2"; a row's own index is among its neighbours (first, unless it has exact duplicates).
    On CUDA tensors the search runs on the GPU (faiss GPU index when faiss has GPUs, else batched
    torch matmul + topk); otherwise faiss on the CPU. Queries go in batches of `batch_size`.
    """
    if metric not in ("ip", "l2"):
        raise ValueError(f"knn: metric must be 'ip' or 'l2', got {metric!r}")
    features = torch.as_tensor(features)
    num = features.shape[0]
    if not 1 <= k <= num:
        raise ValueError(f"knn: k must be in 1..{num} (the number of features), got {k}")
    if features.is_cuda and not faiss_has_gpu():
        return _knn_torch(features.float(), k, batch_size, metric)
    index = _flat_index(features.shape[1], gpu=features.is_cuda, metric=metric)
    database = np.ascontiguousarray(features.detach().float().cpu().numpy())
    index.add(database)
    scores = np.empty((num, k), dtype=np.float32)
    indices = np.empty((num, k), dtype=np.int64)
    for start in range(0, num, batch_size):
        stop = min(start + batch_size, num)
        scores[start:stop], indices[start:stop] = index.search(database[start:stop], k)
    return scores, indices


def _flat_index(dim: int, gpu: bool, metric: str) -> faiss.Index:
    if gpu:
        resources = faiss.StandardGpuResources()
        config = faiss.GpuIndexFlatConfig()
        config.device = torch.cuda.current_device()
        return (faiss.GpuIndexFlatIP if metric == "ip" else faiss.GpuIndexFlatL2)(resources, dim, config)
    return faiss.IndexFlatIP(dim) if metric == "ip" else faiss.IndexFlatL2(dim)


def _knn_torch(features: torch.Tensor, k: int, batch_size: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Batched matmul + topk on the features' device: [N, k] scores and indices."""
    scores, idx = [], []
    squared = (features * features).sum(dim=1)
    for start in range(0, features.shape[0], batch_size):
        block = features[start:start + batch_size] @ features.T
        if metric == "l2":
            block = squared[start:start + batch_size, None] + squared[None, :] - 2 * block
        values, indices = block.topk(k, dim=1, largest=metric == "ip")
        scores.append(values.cpu())
        idx.append(indices.cpu())
    return torch.cat(scores).numpy(), torch.cat(idx).numpy().astype(np.int64)
