from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from reid.checkpoint import load_checkpoint, save_checkpoint
from reid.runtime import (autocast, capture_rng_state, make_generator, progress, resolve_device,
                          restore_rng_state, seed_everything, setup_logging, use_channels_last)


def draw():
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_seed_everything_repeats():
    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(1)
    draw()
    np.random.randn()  # leaves a cached gaussian in numpy's state
    path = save_checkpoint(tmp_path / "rng.pt", kind="test", state={"rng": capture_rng_state()})
    expected = draw()
    seed_everything(99)
    restore_rng_state(load_checkpoint(path)["state"]["rng"])
    assert draw() == expected


def test_generator_is_seeded():
    assert torch.equal(torch.rand(4, generator=make_generator(3)), torch.rand(4, generator=make_generator(3)))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_autocast_is_noop_on_cpu():
    cpu = torch.device("cpu")
    with autocast(cpu):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.float32
    assert not use_channels_last(cpu)


@pytest.mark.gpu
def test_autocast_bf16_on_cuda():
    cuda = torch.device("cuda")
    with autocast(cuda):
        y = torch.nn.Linear(4, 4).to(cuda)(torch.randn(2, 4, device=cuda))
    assert y.dtype == torch.bfloat16
    assert use_channels_last(cuda)


def test_progress_is_quiet_without_a_terminal(capsys):
    assert list(progress(range(3), desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_setup_logging_writes_file_once(tmp_path):
    log_file = tmp_path / "logs" / "run.log"
    setup_logging("INFO", log_file)
    setup_logging("INFO", log_file)  # idempotent: no duplicated handlers
    logging.getLogger("reid.test").info("hello")
    logging.getLogger("reid.test").debug("hidden")
    for handler in logging.getLogger("reid").handlers:
        handler.flush()
    text = log_file.read_text()
    assert text.count("hello") == 1 and "hidden" not in text
