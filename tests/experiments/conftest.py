"""Fixtures shared by the experiment tests."""
from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_openmp_thread():
    """t-SNE on one OpenMP thread: on a busy 2-core machine, threads waiting for each other make it ~10x slower
    (tests/experiments/test_report_threads.py sets its own limit inside)."""
    with threadpool_limits(1, user_api="openmp"):
        yield
