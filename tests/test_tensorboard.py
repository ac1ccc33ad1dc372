"""TensorBoard event files (`reid.tensorboard`): a ReID metrics record flattened to its scalars, the log's event
files read back as TensorBoard reads them, the events of a resumed run (each step once), and nothing at all
without the tensorboard package or when switched off."""
from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from reid.config import config_to_dict, load_config
from reid.data import make_synthetic_sysu
from reid.evaluation import cluster_quality
from reid.resume import REID_SAFE, changed_settings
from reid.tensorboard import TENSORBOARD_DIR, TensorBoardLog, reid_epoch_scalars, tensorboard_available
from reid.train_config import ReIDConfig

needs_tensorboard = pytest.mark.skipif(not tensorboard_available(), reason="the tensorboard package is not installed")
EVAL = {"R1": 0.5, "R5": 0.75, "R10": 0.875, "R20": 1.0, "mAP": 0.625, "mINP": 0.3125, "num_trials": 2}


def cluster_report() -> dict:
    """A cluster-quality report as `reid.train._Run._cluster_report` makes it (numbers and None, no lists)."""
    quality = cluster_quality(np.array([0, 0, 1, 1, -1, 2]), np.array([5, 5, 6, 6, 7, 7]))  # no modalities: None
    return {k: v for k, v in quality.as_dict().items() if not isinstance(v, (list, dict))}


def record(epoch: int, **extra) -> dict:
    """A metrics.jsonl record shaped as `reid.train` writes it."""
    return {"epoch": epoch, "stage": "cross", "stage_epoch": epoch, "lr": 3.5e-4 / epoch, "loss_vis": 1.25 * epoch,
            "loss_ir": 2.5 + epoch, "loss_cross": 0.1 * epoch, "cluster": cluster_report(), "seconds": 12.3, **extra}


class Killed(Exception):
    """Stands for a kill at a chosen point of a run."""


def events(run: Path):
    """RUN/tensorboard/ as TensorBoard reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def points(accumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def as_float32(value: float) -> float:
    """What a TensorBoard scalar event holds of a value (simple_value is a 32-bit float)."""
    return float(np.float32(value))


def test_reid_epoch_scalars_flattens_a_record_exactly():
    cluster = cluster_report()
    assert cluster["mixed_share"] is None and cluster["ari"] is not None
    line = record(2, method={"matched": 7, "share": 0.25, "policy": "hungarian", "converged": True, "pairs": [1, 2],
                             "skipped": None},
                  eval={"all-single": EVAL, "indoor-multi": dict(EVAL, mAP=0.5)})
    expected = {"loss/vis": 2.5, "loss/ir": 4.5, "loss/cross": 0.2, "lr": 1.75e-4}
    expected |= {f"cluster/{key}": float(value) for key, value in cluster.items() if value is not None}
    expected |= {"method/matched": 7.0, "method/share": 0.25}
    for setting, map_ in (("all-single", 0.625), ("indoor-multi", 0.5)):
        expected |= {f"eval/{setting}/{metric}": value for metric, value in
                     {"R1": 0.5, "R5": 0.75, "R10": 0.875, "R20": 1.0, "mAP": map_, "mINP": 0.3125}.items()}
    assert reid_epoch_scalars(line) == expected
    assert all(type(value) is float for value in reid_epoch_scalars(line).values())
    # an epoch without evaluation or notes, and a record whose evaluation is None (the ranks other than 0)
    plain = {"loss/vis": 1.25, "loss/ir": 3.5, "loss/cross": 0.1, "lr": 3.5e-4} | \
        {f"cluster/{key}": float(value) for key, value in cluster.items() if value is not None}
    assert reid_epoch_scalars(record(1)) == reid_epoch_scalars(record(1, eval=None, method={})) == plain
    assert reid_epoch_scalars(json.loads(json.dumps(line))) == expected  # the record as metrics.jsonl holds it


@needs_tensorboard
def test_records_read_back_as_tensorboard_reads_them(tmp_path):
    lines = [record(1), record(2, eval={"all-single": EVAL}, method={"cma_pairs": 3})]
    with TensorBoardLog(tmp_path, enabled=True, purge_step=1) as log:
        assert log.active
        for line in lines:
            log.scalars(line["epoch"], reid_epoch_scalars(line))
    accumulator = events(tmp_path)
    assert set(accumulator.Tags()["scalars"]) == set(reid_epoch_scalars(lines[0])) | set(reid_epoch_scalars(lines[1]))
    for tag in accumulator.Tags()["scalars"]:
        assert points(accumulator, tag) == [(line["epoch"], as_float32(reid_epoch_scalars(line)[tag]))
                                            for line in lines if tag in reid_epoch_scalars(line)], tag
    assert points(accumulator, "eval/all-single/mAP") == [(2, 0.625)]
    assert points(accumulator, "loss/vis") == [(1, 1.25), (2, 2.5)]


@needs_tensorboard
def test_a_resumed_log_keeps_the_checkpointed_steps_and_holds_each_step_once(tmp_path):
    """Epochs 1..3 logged, the checkpoint holds 2 (killed before the third checkpoint): the resumed log trains 3
    and 4 again; every tag holds each epoch once, epoch 3 with the resumed run's value."""
    first = TensorBoardLog(tmp_path, purge_step=1)
    for epoch in (1, 2, 3):
        first.scalars(epoch, {"loss/vis": epoch, "lr": 0.1})
    first.image(2, "samples", np.full((4, 6, 3), 200, dtype=np.uint8))
    first.image(3, "samples", np.full((4, 6, 3), 10, dtype=np.uint8))
    first.close()
    resumed = TensorBoardLog(tmp_path, purge_step=3)
    for epoch in (3, 4):
        resumed.scalars(epoch, {"loss/vis": 10 * epoch, "lr": 0.1})
    resumed.image(4, "samples", np.full((4, 6, 3), 50, dtype=np.uint8))
    resumed.close()
    accumulator = events(tmp_path)
    assert points(accumulator, "loss/vis") == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
    assert [step for step, _ in points(accumulator, "lr")] == [1, 2, 3, 4]
    grids = {image.step: np.asarray(Image.open(io.BytesIO(image.encoded_image_string))) for image in
             accumulator.Images("samples")}
    assert sorted(grids) == [2, 4] and grids[2].max() == 200 and grids[4].max() == 50
    assert len(list((tmp_path / TENSORBOARD_DIR).iterdir())) == 1, "the old file is merged into the new one"
    raw = raw_steps(tmp_path)  # the files themselves, not only what TensorBoard shows
    assert raw["loss/vis"] == [1, 2, 3, 4] and raw["samples"] == [2, 4]


def raw_steps(run: Path) -> dict[str, list[int]]:
    """tag -> the steps of its events in the event files, in file order (no purge applied)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    steps: dict[str, list[int]] = {}
    for path in sorted((run / TENSORBOARD_DIR).glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


@needs_tensorboard
def test_a_copy_cut_short_leaves_no_duplicate_after_the_next_resume(tmp_path):
    """A kill during a resume's copy may leave the old file beside the new one (both hold epoch 1); the next
    resume writes each epoch once."""
    first = TensorBoardLog(tmp_path, purge_step=1)
    first.scalars(1, {"lr": 0.5})
    first.scalars(2, {"lr": 0.25})
    first.close()
    old = next((tmp_path / TENSORBOARD_DIR).iterdir()).read_bytes()
    copy = TensorBoardLog(tmp_path, purge_step=2)
    copy.close()
    (tmp_path / TENSORBOARD_DIR / "events.out.tfevents.0000000001.old").write_bytes(old)  # as if never deleted
    again = TensorBoardLog(tmp_path, purge_step=3)
    again.scalars(3, {"lr": 0.125})
    again.scalars(3, {"lr": 0.9})  # a second point at a step already written: not written
    again.close()
    assert raw_steps(tmp_path) == {"lr": [1, 2, 3]}
    assert points(events(tmp_path), "lr") == [(1, 0.5), (2, 0.25), (3, 0.125)]


@needs_tensorboard
def test_purge_step_none_keeps_the_old_files(tmp_path):
    with TensorBoardLog(tmp_path) as log:
        log.scalars(1, {"lr": 0.5})
    with TensorBoardLog(tmp_path) as log:
        log.scalars(2, {"lr": 0.25})
    assert len(list((tmp_path / TENSORBOARD_DIR).iterdir())) == 2 and raw_steps(tmp_path) == {"lr": [1, 2]}


@needs_tensorboard
def test_images_from_a_path_a_pil_image_or_an_array(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "grid.png")
    with TensorBoardLog(tmp_path) as log:
        log.image(1, "a", tmp_path / "grid.png")
        log.image(1, "b", Image.fromarray(pixels))
        log.image(1, "c", pixels)
        log.image(1, "d", pixels.transpose(2, 0, 1), dataformats="CHW")
    accumulator = events(tmp_path)
    for tag in "abcd":
        (image,) = accumulator.Images(tag)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB")), pixels)


def hide_tensorboard(monkeypatch) -> None:
    """As if the tensorboard package were not installed: importing it (or torch.utils.tensorboard) fails."""
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_the_package_the_log_does_nothing_and_says_so_once(tmp_path, monkeypatch, caplog):
    hide_tensorboard(monkeypatch)
    assert not tensorboard_available()
    with caplog.at_level(logging.DEBUG, logger="reid.tensorboard"), warnings.catch_warnings():
        warnings.simplefilter("error")
        log = TensorBoardLog(tmp_path, enabled=True, purge_step=1)
        log.scalars(1, {"lr": 0.1})
        log.image(1, "samples", tmp_path / "not-read.png")  # a path is read only when the log is active
        log.flush()
        log.close()
    assert not log.active and not (tmp_path / TENSORBOARD_DIR).exists()
    messages = [r for r in caplog.records if r.name == "reid.tensorboard"]
    assert len(messages) == 1 and messages[0].levelno == logging.INFO
    assert "pip install -e '.[tensorboard]'" in messages[0].getMessage()


def test_switched_off_it_writes_nothing_and_logs_nothing(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="reid.tensorboard"):
        with TensorBoardLog(tmp_path, enabled=False, purge_step=1) as log:
            log.scalars(1, {"lr": 0.1})
    assert not log.active and not (tmp_path / TENSORBOARD_DIR).exists()
    assert not [r for r in caplog.records if r.name == "reid.tensorboard"]


def test_runtime_tensorboard_is_on_by_default_and_may_change_on_resume():
    config = load_config(ReIDConfig)
    assert config.runtime.tensorboard is True
    off = config_to_dict(load_config(ReIDConfig, overrides=["runtime.tensorboard=false"]))
    assert off["runtime"]["tensorboard"] is False
    assert "runtime.tensorboard" in REID_SAFE and changed_settings(config_to_dict(config), off, safe=REID_SAFE) == []


# ------------------------------------------------------------------ end to end, through reid/train.py


def tiny_reid_config(root: Path, out: Path, **train) -> dict:
    """adca without translated views: two intra epochs, one cross epoch (ADCA's notes: cma_pairs), evaluation at
    epochs 2 and 3."""
    return {"data": {"name": "synthetic", "root": str(root)}, "method": {"name": "adca"},
            "model": {"arch": "tiny", "height": 32, "width": 16},
            "cluster": {"k1": 6, "k2": 2, "eps": 0.6, "min_samples": 2},
            "train": {"iterations": 2, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                      "stages": {"intra": {"epochs": 2, "lr": 1e-3}, "cross": {"epochs": 1, "lr": 1e-3}}, **train},
            "eval": {"every": 2, "trials": 1, "batch_size": 16, "settings": ["all-single"]},
            "runtime": {"device": "cpu", "workers": 0, "seed": 3}, "output_dir": str(out)}


@needs_tensorboard
def test_reid_training_writes_tensorboard_events(tmp_path, monkeypatch, one_torch_thread, slow_event_writer):
    """A run killed after epoch 2's metrics line and events, before its checkpoint, then rerun: the events hold
    each record of metrics.jsonl once, at its epoch, with its values, and of the killed run's points only those of
    epoch 1 (marked killed/run); runtime.tensorboard=false writes none."""
    import reid.train
    from reid.train import train_reid

    root = tmp_path / "synthetic"
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    out = tmp_path / "run"
    path = tmp_path / "reid.yaml"
    path.write_text(yaml.safe_dump(tiny_reid_config(root, out)))
    save, scalars = reid.train.save_model_checkpoint, TensorBoardLog.scalars
    calls = []

    def marked(self, step, values):  # the killed run's points carry a tag of their own
        scalars(self, step, dict(values) | {"killed/run": 1.0})

    def killed_at_the_second_checkpoint(*args, **kwargs):
        calls.append(raw_steps(out))  # the event files' steps of each tag as the checkpoint is written
        if len(calls) == 2:
            raise Killed("after epoch 2's metrics line and events, before its checkpoint")
        return save(*args, **kwargs)

    monkeypatch.setattr(reid.train, "save_model_checkpoint", killed_at_the_second_checkpoint)
    monkeypatch.setattr(TensorBoardLog, "scalars", marked)
    with pytest.raises(Killed):
        train_reid(load_config(ReIDConfig, path))
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(calls) == len(logged) == 2
    for epoch, (on_disk, line) in enumerate(zip(calls, logged), 1):
        assert all(epoch in on_disk.get(tag, []) for tag in reid_epoch_scalars(line)), \
            f"epoch {epoch}'s events reach the disk before its checkpoint"
    assert raw_steps(out)["killed/run"] == [1, 2]
    monkeypatch.setattr(reid.train, "save_model_checkpoint", save)
    monkeypatch.setattr(TensorBoardLog, "scalars", scalars)
    train_reid(load_config(ReIDConfig, path))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    expected: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        for tag, value in reid_epoch_scalars(line).items():
            expected.setdefault(tag, []).append((line["epoch"], as_float32(value)))
    assert {"loss/vis", "lr", "cluster/ari", "eval/all-single/mAP", "method/cma_pairs"} <= set(expected)
    accumulator = events(out)
    assert set(accumulator.Tags()["scalars"]) == set(expected) | {"killed/run"}
    assert raw_steps(out)["killed/run"] == [1], "the killed run's epoch 2 is dropped, epoch 1 kept"
    for tag, want in expected.items():
        assert points(accumulator, tag) == want, tag
    assert all(steps == sorted(set(steps)) for steps in raw_steps(out).values()), "a step twice in the files"
    off = tmp_path / "off"
    path.write_text(yaml.safe_dump(tiny_reid_config(root, off, max_epochs=1) | {
        "runtime": {"device": "cpu", "workers": 0, "seed": 3, "tensorboard": False}}))
    train_reid(load_config(ReIDConfig, path))
    assert (off / "metrics.jsonl").exists() and not (off / TENSORBOARD_DIR).exists()
