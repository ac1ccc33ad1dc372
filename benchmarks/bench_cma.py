"""Benchmark: ADCA's cross-modality memory aggregation (CMA) votes, blocked (`reid.memories.aggregation`) against
the reference's dense algorithm (ADCA adca_sysu_train.py:814-850: the full Nv x Ni similarity matrix, an argsort
of all its entries, a Counter over the pairs above the threshold), on the same features.

Each measurement runs in its own subprocess so its peak resident memory (ru_maxrss) is its own. Features are
clustered like ReID features (identities with a modality offset, varying noise), L2-normalised; both sides get
labels from the identities (a share of outliers), as per-modality DBSCAN would give.

    python benchmarks/bench_cma.py                        # Nv x Ni = 4,000 x 2,000 and 8,000 x 4,000, both ways
    python benchmarks/bench_cma.py --sizes 22258x11909 --dense 0   # SYSU-MM01's training set, blocked only
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import torch

IMAGES_PER_IDENTITY = 56  # SYSU-MM01: 22,258 visible images of 395 identities


def make_side(num: int, dim: int, identities: np.ndarray, modality: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [num, dim] L2-normalised, cluster labels [num] with ~20% outliers) of one modality."""
    rng = np.random.default_rng([seed, modality])
    offset = 0.5 * np.random.default_rng(seed + 99).standard_normal((2, dim))[modality]
    ids = rng.integers(0, len(identities), num)
    features = identities[ids] + offset + rng.uniform(0.5, 1.0, (num, 1)) * rng.standard_normal((num, dim))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    labels = np.where(rng.random(num) < 0.2, -1, ids)
    used = np.unique(labels[labels >= 0])
    labels = np.where(labels >= 0, np.searchsorted(used, labels), -1)
    return features.astype(np.float32), labels


def make_data(num_vis: int, num_ir: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    identities = rng.standard_normal((max(2, num_vis // IMAGES_PER_IDENTITY), dim))
    return make_side(num_vis, dim, identities, 0, seed) + make_side(num_ir, dim, identities, 1, seed)


def dense_votes(vis: np.ndarray, vis_labels: np.ndarray, ir: np.ndarray, ir_labels: np.ndarray,
                threshold: float) -> list[tuple[tuple[int, int], int]]:
    """The reference's ranking: sort every image pair by similarity, count the cluster pairs of those above the
    threshold, order them by count (stable: first appearance)."""
    distances = np.matmul(vis, ir.T)
    order = np.unravel_index(np.argsort(distances, axis=None)[::-1], distances.shape)
    values = distances[order]
    kept = int(np.sum(values >= threshold))
    pairs = Counter(zip(vis_labels[order[0][:kept]].tolist(), ir_labels[order[1][:kept]].tolist()))
    return sorted(pairs.items(), key=lambda item: item[1], reverse=True)


def measure(method: str, num_vis: int, num_ir: int, dim: int, threshold: float) -> dict:
    from reid.memories import cross_modal_cluster_votes, greedy_cluster_pairs

    vis, vis_labels, ir, ir_labels = make_data(num_vis, num_ir, dim)
    start = time.perf_counter()
    if method == "dense":
        ranked = dense_votes(vis, vis_labels, ir, ir_labels, threshold)
        taken_vis, taken_ir, pairs = set(), set(), []
        for (v, i), _ in ranked:
            if v >= 0 and i >= 0 and v not in taken_vis and i not in taken_ir:
                pairs.append((v, i))
                taken_vis.add(v)
                taken_ir.add(i)
    else:
        votes, best = cross_modal_cluster_votes(torch.from_numpy(vis), torch.from_numpy(ir), vis_labels, ir_labels,
                                                threshold=threshold)
        pairs = greedy_cluster_pairs(votes, best)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"seconds": seconds, "peak_gib": peak, "pairs": sorted(pairs)}


def run_in_subprocess(method: str, num_vis: int, num_ir: int, dim: int, threshold: float) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r}); import bench_cma; "
            f"print(json.dumps(bench_cma.measure({method!r}, {num_vis}, {num_ir}, {dim}, {threshold})))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["4000x2000", "8000x4000"],
                        help="visible x infrared image counts (default: %(default)s)")
    parser.add_argument("--dim", type=int, default=2048, help="feature size (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.5, help="ADCA's vote threshold (default: %(default)s)")
    parser.add_argument("--dense", type=int, default=1, help="1: also run the dense reference algorithm")
    args = parser.parse_args()
    print(f"{'Nv x Ni':>13}  {'method':>7}  {'seconds':>8}  {'peak GiB':>8}  pairs")
    for size in args.sizes:
        num_vis, num_ir = (int(part) for part in size.split("x"))
        results = {method: run_in_subprocess(method, num_vis, num_ir, args.dim, args.threshold)
                   for method in (["dense"] if args.dense else []) + ["blocked"]}
        for method, result in results.items():
            print(f"{size:>13}  {method:>7}  {result['seconds']:8.2f}  {result['peak_gib']:8.2f}  {len(result['pairs'])}")
        if "dense" in results:
            same = results["dense"]["pairs"] == results["blocked"]["pairs"]
            print(f"{'':>13}  blocked is {results['dense']['seconds'] / results['blocked']['seconds']:.1f}x faster, "
                  f"{results['dense']['peak_gib'] / results['blocked']['peak_gib']:.1f}x less peak memory; "
                  f"the same pairs: {same}")


if __name__ == "__main__":
    main()
