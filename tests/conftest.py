"""Shared test set-up: GPU tests skip without CUDA; paths to the real index files beside the checkout; one torch
thread for the modules that train tiny networks; a slowed TensorBoard writer for the tests that check events reach
the disk before each checkpoint."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_FORMATS = Path(__file__).resolve().parents[1].parent / "shared" / "formats"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module (request it, or `pytestmark = pytest.mark.usefixtures("one_torch_thread")`),
    restored when the module ends: on a busy 2-core machine, OpenMP threads spinning against another process make
    small convolutions several times slower, and one thread is as fast when the machine is idle."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def shared_formats() -> Path:
    """The real index files in ../shared/formats; the test skips when they are absent."""
    if not SHARED_FORMATS.is_dir():
        pytest.skip(f"real index files not found at {SHARED_FORMATS}")
    return SHARED_FORMATS


@pytest.fixture
def slow_event_writer(monkeypatch):
    """tensorboard's writer thread takes 5 ms a record, so events still queued at a checkpoint stay off the disk
    unless the log is flushed first (else the thread drains its queue within a millisecond or so)."""
    import time

    from tensorboard.summary.writer import record_writer

    write = record_writer.RecordWriter.write

    def slow_write(self, data):
        time.sleep(0.005)
        return write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", slow_write)
