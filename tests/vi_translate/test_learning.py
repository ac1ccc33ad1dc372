"""The translator learns: its cycle loss falls within a few dozen steps (it fails when the generators' optimiser
step is removed), and a rerun trains only the steps that are missing (counted, so a restart from scratch fails)."""
from __future__ import annotations

import json

import vi_translate.train as translator_train
from vi_translate.train import train_translator

from translator_helpers import build_translator_config, tiny_translator_config


def cycle_losses(run) -> list[float]:
    """cycle_vis + cycle_ir of every logged step."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["cycle_vis"] + line["cycle_ir"] for line in lines]


def test_the_cycle_loss_falls(tiny_dataset, tmp_path, one_torch_thread):
    run = tmp_path / "run"
    train_translator(build_translator_config(tiny_translator_config(
        tiny_dataset, run, max_steps=40, epochs=4, epochs_decay=0, lr=2e-3, sample_every=1000, checkpoint_every=1000)))
    losses = cycle_losses(run)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, f"cycle loss {first:.3f} over the first 5 steps, {last:.3f} over the last 5"


def test_a_rerun_trains_only_the_missing_steps(tiny_dataset, tmp_path, monkeypatch, one_torch_thread):
    steps = []
    original = translator_train.train_step

    def counted(*args, **kwargs):
        steps.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(translator_train, "train_step", counted)
    run = tmp_path / "run"
    train_translator(build_translator_config(tiny_translator_config(tiny_dataset, run, max_steps=3)))
    assert len(steps) == 3
    train_translator(build_translator_config(tiny_translator_config(tiny_dataset, run, max_steps=7)))  # 4 more
    assert len(steps) == 7
    train_translator(build_translator_config(tiny_translator_config(tiny_dataset, run, max_steps=7)))  # finished
    assert len(steps) == 7
