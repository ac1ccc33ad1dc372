"""The t-SNE thread setting of the report: `threads` limits scikit-learn's OpenMP threads, and the default
leaves whatever the user's environment sets."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_info, threadpool_limits

from experiments import report


def openmp_threads() -> int:
    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp")


@pytest.fixture
def threads_seen(monkeypatch) -> list[int]:
    """The OpenMP thread count each TSNE.fit_transform call runs under (the embedding itself: zeros [N, 2])."""
    seen = []

    def fit_transform(self, x):
        seen.append(openmp_threads())
        return np.zeros((len(x), 2))

    monkeypatch.setattr(TSNE, "fit_transform", fit_transform)
    return seen


def test_threads_limit_the_tsne_and_the_default_limits_nothing(threads_seen, tmp_path):
    features = np.random.default_rng(0).standard_normal((12, 8))
    with threadpool_limits(2, user_api="openmp"):  # the environment's setting, whatever the machine
        report.tsne_embedding(features)
        report.tsne_embedding(features, threads=1)
        report.plot_tsne(features, np.arange(12) % 3, ["vis", "ir"] * 6, tmp_path / "tsne.png", threads=1)
        report.plot_tsne_panels({"a": (features, np.arange(12) % 3, ["vis"] * 12)}, tmp_path / "panels.png")
    assert threads_seen == [2, 1, 1, 2]
