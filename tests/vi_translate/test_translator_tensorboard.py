"""The translator's TensorBoard events (OUTPUT_DIR/tensorboard/): the scalars of every metrics.jsonl line at its
step and each sample grid as written to samples/, each step once after a killed run resumes; without the
tensorboard package, or with runtime.tensorboard=false, no folder and training as before."""
from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reid.tensorboard import TENSORBOARD_DIR, tensorboard_available
from vi_translate import train as translator_train
from vi_translate.train import RESUME_SAFE, resume_changes, train_translator

from translator_helpers import build_translator_config, tiny_translator_config

needs_tensorboard = pytest.mark.skipif(not tensorboard_available(), reason="the tensorboard package is not installed")
PLAIN = ("epoch", "lr", "images_per_s")  # the keys of a metrics line written under their own name; the rest: loss/


class Killed(Exception):
    """Stands for a kill at a chosen step."""


def run(data_root: Path, out: Path, *, fresh: bool = False, tensorboard: bool | None = None, **train) -> Path:
    config = tiny_translator_config(data_root, out, **train)
    if tensorboard is not None:
        config["runtime"]["tensorboard"] = tensorboard
    return train_translator(build_translator_config(config), fresh=fresh)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def expected_scalars(out: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value as a 32-bit TensorBoard scalar)] of every line of metrics.jsonl."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for line in metrics(out):
        for key, value in line.items():
            if key != "step":
                tag = key if key in PLAIN else f"loss/{key}"
                expected.setdefault(tag, []).append((line["step"], float(np.float32(value))))
    return expected


def events(out: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(out / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def raw_steps(out: Path) -> dict[str, list[int]]:
    """tag -> the steps of its events in the event files themselves, in file order (no purge applied)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    steps: dict[str, list[int]] = {}
    for path in sorted((out / TENSORBOARD_DIR).glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


def assert_events_match_the_run(out: Path) -> None:
    """The events hold exactly metrics.jsonl's scalars and samples/'s grids, each step once."""
    accumulator = events(out)
    expected = expected_scalars(out)
    assert set(accumulator.Tags()["scalars"]) == set(expected)
    for tag, want in expected.items():
        assert [(event.step, event.value) for event in accumulator.Scalars(tag)] == want, tag
    grids = sorted(int(path.stem.split("_")[1]) for path in (out / "samples").glob("step_*.png"))
    assert [image.step for image in accumulator.Images("samples")] == grids
    for image in accumulator.Images("samples"):
        written = np.asarray(Image.open(out / "samples" / f"step_{image.step:07d}.png").convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB")), written)
    raw = raw_steps(out)
    assert all(steps == sorted(set(steps)) for steps in raw.values()), f"a step twice in the files: {raw}"
    assert len(list((out / TENSORBOARD_DIR).iterdir())) == 1


@needs_tensorboard
def test_events_hold_every_metrics_line_and_each_sample_grid(tiny_dataset, tmp_path, one_torch_thread):
    out = tmp_path / "run"
    run(tiny_dataset, out, max_steps=6, log_every=2, sample_every=3)
    assert [line["step"] for line in metrics(out)] == [2, 4, 6]
    assert set(expected_scalars(out)) == {"epoch", "lr", "images_per_s"} | {
        f"loss/{name}" for name in ("G_vis2ir", "G_ir2vis", "cycle_vis", "cycle_ir", "idt_vis", "idt_ir", "D_vis",
                                    "D_ir")}
    assert_events_match_the_run(out)
    assert [image.step for image in events(out).Images("samples")] == [3, 6]  # the last also ends the run: once


@needs_tensorboard
def test_a_killed_run_resumed_holds_each_step_once(tiny_dataset, tmp_path, monkeypatch, one_torch_thread,
                                                   slow_event_writer):
    """Checkpoint at step 3, steps 4 and 5 logged (and a grid at 4) after it, killed in step 6; the rerun trains
    4..8 again and the event files hold each step once, with the rerun's values."""
    out = tmp_path / "run"
    settings = {"max_steps": 8, "log_every": 1, "sample_every": 2, "checkpoint_every": 3}
    step, save = translator_train._Trainer._step, translator_train.save_translator_checkpoint
    on_disk = []  # the event files' steps of each tag as each checkpoint is written

    def killed_in_step_6(self, batch):
        if self.position.step == 5:
            raise Killed("in step 6")
        return step(self, batch)

    def saved(*args, **kwargs):
        on_disk.append(raw_steps(out))
        return save(*args, **kwargs)

    monkeypatch.setattr(translator_train._Trainer, "_step", killed_in_step_6)
    monkeypatch.setattr(translator_train, "save_translator_checkpoint", saved)
    with pytest.raises(Killed):
        run(tiny_dataset, out, **settings)
    (at_checkpoint,) = on_disk
    logged = {tag: [step for step, _ in points] for tag, points in expected_scalars(out).items()}
    assert at_checkpoint == {tag: [1, 2, 3] for tag in logged} | {"samples": [2]}, \
        "every event of the checkpointed steps is on disk before the checkpoint"
    assert raw_steps(out)["loss/D_ir"] == [1, 2, 3, 4, 5] and raw_steps(out)["samples"] == [2, 4]
    monkeypatch.setattr(translator_train._Trainer, "_step", step)
    monkeypatch.setattr(translator_train, "save_translator_checkpoint", save)
    run(tiny_dataset, out, **settings)
    assert [line["step"] for line in metrics(out)] == list(range(1, 9))
    assert_events_match_the_run(out)
    assert raw_steps(out)["loss/D_ir"] == list(range(1, 9)) and raw_steps(out)["samples"] == [2, 4, 6, 8]


def hide_tensorboard(monkeypatch) -> None:
    """As if the tensorboard package were not installed: importing it (or torch.utils.tensorboard) fails."""
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_the_package_training_runs_and_writes_no_folder(tiny_dataset, tmp_path, monkeypatch, caplog,
                                                                 recwarn, one_torch_thread):
    hide_tensorboard(monkeypatch)
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        checkpoint = run(tiny_dataset, out, max_steps=3)
    assert checkpoint.exists() and [line["step"] for line in metrics(out)] == [1, 2, 3]
    assert (out / "samples" / "step_0000003.png").exists() and not (out / TENSORBOARD_DIR).exists()
    said = [record for record in caplog.records if "tensorboard" in record.getMessage().lower()]
    assert len(said) == 1 and said[0].levelno == logging.INFO and "pip install" in said[0].getMessage()
    assert not [warning for warning in recwarn if "tensorboard" in str(warning.message).lower()]


@needs_tensorboard
def test_runtime_tensorboard_false_writes_no_folder_and_may_change_on_resume(tiny_dataset, tmp_path,
                                                                             one_torch_thread):
    out = tmp_path / "run"
    run(tiny_dataset, out, max_steps=3, tensorboard=False)
    assert [line["step"] for line in metrics(out)] == [1, 2, 3] and not (out / TENSORBOARD_DIR).exists()
    assert "runtime.tensorboard" in RESUME_SAFE
    run(tiny_dataset, out, max_steps=5, tensorboard=True)  # a resume may switch it on: steps 4 and 5 get events
    accumulator = events(out)
    assert [event.step for event in accumulator.Scalars("loss/D_ir")] == [4, 5]
    assert [event.value for event in accumulator.Scalars("lr")] == [float(np.float32(2e-4))] * 2
    saved = {"train": {"epochs": 1, "epochs_decay": 1}, "runtime": {"tensorboard": True}}
    assert resume_changes(saved, {"train": {"epochs": 1, "epochs_decay": 1}, "runtime": {"tensorboard": False}},
                          0) == []


@needs_tensorboard
def test_fresh_moves_the_old_events_aside(tiny_dataset, tmp_path, one_torch_thread):
    out = tmp_path / "run"
    run(tiny_dataset, out, max_steps=2)
    run(tiny_dataset, out, fresh=True, max_steps=1)
    assert raw_steps(out / "previous" / "1")["loss/D_ir"] == [1, 2] and raw_steps(out)["loss/D_ir"] == [1]
