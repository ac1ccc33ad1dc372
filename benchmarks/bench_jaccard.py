"""Benchmark: sparse k-reciprocal Jaccard + DBSCAN against the straightforward dense implementation.

Each measurement runs in its own subprocess so its peak resident memory (ru_maxrss) is its own.
Features are clustered like ReID features (identities x modalities, varying noise), L2-normalised.

    python benchmarks/bench_jaccard.py                      # N = 2,000 / 5,000 / 10,000 both ways, 34,167 sparse
    python benchmarks/bench_jaccard.py --sizes 3000 --full 0 # quick look

--device cuda gives the sparse path CUDA features (its neighbour search then runs on the GPU: faiss's GPU index
with faiss-gpu, else torch) and reports the run's peak GPU memory too; the dense path stays on the CPU. --sizes
with no value runs no comparison; --json ends the output with one JSON line of every row:

    python benchmarks/bench_jaccard.py --sizes --full 34167 --device cuda --json   # SYSU-MM01 size on the GPU
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F

SYSU_TRAIN_IMAGES = 34_167
IMAGES_PER_GROUP = 43  # SYSU-MM01: ~86 images per identity, two modalities


def make_features(num: int, dim: int, seed: int = 0) -> np.ndarray:
    """[num, dim] L2-normalised features: identity centre + modality offset + per-image noise of varying size."""
    rng = np.random.default_rng(seed)
    num_ids = max(1, num // (2 * IMAGES_PER_GROUP))
    identity = rng.standard_normal((num_ids, dim))
    modality = 0.6 * rng.standard_normal((2, dim))
    ids = rng.integers(0, num_ids, num)
    modalities = rng.integers(0, 2, num)
    noise_scale = rng.uniform(0.6, 1.4, (num, 1))
    features = identity[ids] + modality[modalities] + noise_scale * rng.standard_normal((num, dim))
    return (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)


def dense_jaccard(features: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """The straightforward dense implementation (cluster-contrast's compute_jaccard_distance structure):
    full N x N weight and distance matrices, per-row loops. Like cluster-contrast it ranks neighbours
    with faiss (the same `knn` as the sparse path), so the two differ only in float rounding; a
    ranking from another matmul (torch) breaks near-ties differently and moves single rows by ~1e-2."""
    from reid.cluster import knn

    x = torch.from_numpy(features)
    num = len(features)
    initial_rank = knn(x, k1)[1]

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = initial_rank[i, :k + 1]
        return forward[np.where(initial_rank[forward, :k + 1] == i)[0]]

    nn_k1 = [reciprocal(i, k1) for i in range(num)]
    nn_half = [reciprocal(i, int(np.around(k1 / 2))) for i in range(num)]
    weights = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        expansion = nn_k1[i]
        for candidate in nn_k1[i]:
            if len(np.intersect1d(nn_half[candidate], nn_k1[i])) > 2 / 3 * len(nn_half[candidate]):
                expansion = np.append(expansion, nn_half[candidate])
        expansion = np.unique(expansion)
        dist = 2 - 2 * x[i:i + 1] @ x[expansion].T
        weights[i, expansion] = F.softmax(-dist, dim=1).view(-1).numpy()
    if k2 != 1:
        expanded = np.zeros_like(weights)
        for i in range(num):
            expanded[i] = weights[initial_rank[i, :k2]].mean(axis=0)
        weights = expanded
    inverted = [np.where(weights[:, k] != 0)[0] for k in range(num)]
    jaccard = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        shared = np.zeros(num, dtype=np.float32)
        for k in np.where(weights[i] != 0)[0]:
            shared[inverted[k]] += np.minimum(weights[i, k], weights[inverted[k], k])
        jaccard[i] = 1 - shared / (2 - shared)
    jaccard[jaccard < 0] = 0
    return jaccard


class GpuMemoryPeak:
    """The most device memory in use (cudaMemGetInfo, all allocators: torch's and faiss's), sampled every
    `interval` s from a thread while the block runs, above what was in use when it started."""

    def __init__(self, device: torch.device, interval: float = 0.01) -> None:
        self.device, self.interval = device, interval
        self.peak_bytes = 0
        self._stop = threading.Event()

    def _used(self) -> int:
        free, total = torch.cuda.mem_get_info(self.device)
        return total - free

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._used() - self._baseline)
            self._stop.wait(self.interval)

    def __enter__(self) -> "GpuMemoryPeak":
        self._baseline = self._used()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._used() - self._baseline)


def run_worker(method: str, num: int, dim: int, k1: int, k2: int, eps: float, device: str = "cpu") -> dict:
    """One measurement in this process: time and peak memory of Jaccard (+ DBSCAN); device "cuda": the sparse
    path gets CUDA features, and the peak GPU memory is measured too."""
    from sklearn.cluster import DBSCAN

    from reid.cluster import cluster_labels, jaccard_distance

    features = make_features(num, dim)
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu = torch.device(device) if method == "sparse" and device == "cuda" else None
    if gpu is not None:
        torch.zeros(1, device=gpu)  # the CUDA context, before the measurement
        torch.cuda.reset_peak_memory_stats(gpu)
    peak = GpuMemoryPeak(gpu) if gpu is not None else contextlib.nullcontext()
    with peak:
        start = time.perf_counter()
        if method == "sparse":
            inputs = torch.from_numpy(features)
            if gpu is not None:
                inputs = inputs.to(gpu)
                torch.cuda.synchronize(gpu)
            distance = jaccard_distance(inputs, k1=k1, k2=k2)
            jaccard_seconds = time.perf_counter() - start
            labels = cluster_labels(distance, method="dbscan", eps=eps, min_samples=4)
        else:
            distance = dense_jaccard(features, k1, k2)
            jaccard_seconds = time.perf_counter() - start
            labels = DBSCAN(eps=eps, min_samples=4, metric="precomputed", n_jobs=-1).fit_predict(distance)
        total_seconds = time.perf_counter() - start
    extra = {}
    if gpu is not None:
        from reid.cluster.neighbors import faiss_has_gpu

        extra = {"device": "cuda", "device_name": torch.cuda.get_device_name(gpu), "faiss_gpu": faiss_has_gpu(),
                 "peak_gpu_gib": round(peak.peak_bytes / 2**30, 2),
                 "peak_torch_gpu_gib": round(torch.cuda.max_memory_allocated(gpu) / 2**30, 2)}
    np.save(f"/tmp/bench_jaccard_{method}_{num}.npy", labels)
    if method == "dense" or num <= 10_000:
        _save_rows(method, num, distance)
    return {"method": method, "N": num, "dim": dim, "jaccard_s": round(jaccard_seconds, 2),
            "total_s": round(total_seconds, 2), "clusters": int(labels.max() + 1),
            "outliers": int((labels == -1).sum()),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "features_rss_gib": round(baseline_rss / 2**20, 2), **extra}


def _save_rows(method: str, num: int, distance) -> None:
    """Keep 200 rows of the distance matrix, dense with unstored pairs at 1, to compare the two methods."""
    rows = np.arange(0, num, max(1, num // 200))[:200]
    if isinstance(distance, np.ndarray):
        sampled = distance[rows]
    else:
        block = distance[rows].tocoo()
        sampled = np.ones((len(rows), num), dtype=np.float32)
        sampled[block.row, block.col] = block.data
    np.save(f"/tmp/bench_jaccard_rows_{method}_{num}.npy", sampled)


def measure(method: str, num: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--n", str(num), "--dim", str(args.dim),
               "--k1", str(args.k1), "--k2", str(args.k2), "--eps", str(args.eps), "--device", args.device]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stderr)
        result.check_returncode()
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(num: int) -> str:
    """Max abs difference of the sampled rows, and whether the DBSCAN labels agree (ARI)."""
    from sklearn.metrics import adjusted_rand_score

    sparse_rows = np.load(f"/tmp/bench_jaccard_rows_sparse_{num}.npy")
    dense_rows = np.load(f"/tmp/bench_jaccard_rows_dense_{num}.npy")
    ari = adjusted_rand_score(np.load(f"/tmp/bench_jaccard_dense_{num}.npy"),
                              np.load(f"/tmp/bench_jaccard_sparse_{num}.npy"))
    return f"max |sparse - dense| = {np.abs(sparse_rows - dense_rows).max():.2e}, label ARI = {ari:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 5000, 10000],
                        help="N at which both implementations run (none: no comparison)")
    parser.add_argument("--full", type=int, default=SYSU_TRAIN_IMAGES,
                        help="N at which only the sparse one runs (0 to skip)")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--k1", type=int, default=30)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--eps", type=float, default=0.6, help="DBSCAN eps")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where the sparse path's features are (cuda: neighbour search on the GPU)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of every row")
    parser.add_argument("--worker", choices=["sparse", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.n, args.dim, args.k1, args.k2, args.eps, args.device)))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    print(f"k-reciprocal Jaccard (k1={args.k1}, k2={args.k2}) + DBSCAN (eps={args.eps}), dim={args.dim}, "
          f"torch threads={torch.get_num_threads()}" + (", sparse features on CUDA" if args.device == "cuda" else ""))
    print(f"{'N':>7} {'method':>7} {'jaccard s':>10} {'total s':>8} {'peak GiB':>9} {'clusters':>9}"
          + (f" {'GPU GiB':>8}" if args.device == "cuda" else ""))
    measured = []
    for num in args.sizes:
        rows = {method: measure(method, num, args) for method in ("dense", "sparse")}
        measured.extend(rows.values())
        for method, row in rows.items():
            print(f"{num:>7} {method:>7} {row['jaccard_s']:>10} {row['total_s']:>8} {row['peak_rss_gib']:>9} "
                  f"{row['clusters']:>9}" + (f" {row['peak_gpu_gib']:>8}" if "peak_gpu_gib" in row else ""))
        speedup = rows["dense"]["total_s"] / rows["sparse"]["total_s"]
        memory = rows["dense"]["peak_rss_gib"] / rows["sparse"]["peak_rss_gib"]
        print(f"{'':>7} sparse is {speedup:.1f}x faster, {memory:.1f}x less peak memory; {compare(num)}")
    if args.full:
        row = measure("sparse", args.full, args)
        measured.append(row)
        dense_gib = 3 * args.full ** 2 * 4 / 2**30
        gpu = f" {row['peak_gpu_gib']:>8}" if "peak_gpu_gib" in row else ""
        print(f"{args.full:>7} {'sparse':>7} {row['jaccard_s']:>10} {row['total_s']:>8} {row['peak_rss_gib']:>9} "
              f"{row['clusters']:>9}{gpu}   (dense would hold 3 N x N float32 matrices: {dense_gib:.1f} GiB)")
    if args.json:
        print(json.dumps({"benchmark": "jaccard", "k1": args.k1, "k2": args.k2, "eps": args.eps, "dim": args.dim,
                          "device": args.device, "rows": measured}))


if __name__ == "__main__":
    main()
