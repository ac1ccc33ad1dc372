"""The translator's training loop: outputs, exact resume (also after a SIGKILL), divergence, CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from reid.checkpoint import load_checkpoint
from vi_translate.cli import main as translate_main
from vi_translate.config import TranslatorConfig
from vi_translate.losses import GANLoss
from vi_translate.train import TrainingDiverged, train_translator

from translator_helpers import build_translator_config, tiny_translator_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_root(tiny_dataset) -> Path:
    return tiny_dataset


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def build(data: dict) -> TranslatorConfig:
    return build_translator_config(data)


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(checkpoint)["state"]
    flat = {f"{net}.{key}": value for net, sd in state["nets"].items() for key, value in sd.items()}
    flat |= {f"pool.{m}.{i}": image for m, pool in state["pools"].items() for i, image in enumerate(pool["images"])}
    return flat


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [key for key in wa if not torch.equal(wa[key], wb[key])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_outputs_of_a_run(data_root, tmp_path):
    checkpoint = train_translator(build(tiny_translator_config(data_root, tmp_path / "run", max_steps=6)))
    run = tmp_path / "run"
    assert checkpoint == run / "checkpoints" / "last.pt" and load_checkpoint(checkpoint)["step"] == 6
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["ngf"] == 4
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    for key in ("G_vis2ir", "G_ir2vis", "cycle_vis", "cycle_ir", "idt_vis", "idt_ir", "D_vis", "D_ir", "lr",
                "images_per_s"):
        assert key in lines[0]
    grid = Image.open(run / "samples" / "step_0000006.png")
    assert grid.size[0] > 6 * 16 and grid.size[1] > 2 * 32  # 6 columns (vis | vis2ir | rec | ir | ir2vis | rec), 2 rows
    assert (run / "samples" / "step_0000003.png").exists() and (run / "loss_curves.png").stat().st_size > 1000


def test_resume_reaches_the_uninterrupted_weights(data_root, tmp_path):
    """Stop at step 5 (inside epoch 0), resume, and cross the epoch boundary and the start of the decay."""
    straight = train_translator(build(tiny_translator_config(data_root, tmp_path / "straight", max_steps=12)))
    train_translator(build(tiny_translator_config(data_root, tmp_path / "split", max_steps=5)))
    resumed = train_translator(build(tiny_translator_config(data_root, tmp_path / "split", max_steps=12)))  # resumes by itself
    # 20 visible images / batch 2 = 10 steps per epoch: step 12 is the second step of epoch 1
    assert load_checkpoint(resumed)["state"]["position"] == {"step": 12, "epoch": 1, "step_in_epoch": 2}
    assert_same_weights(straight, resumed)
    lr = [json.loads(line)["lr"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert lr[0] == pytest.approx(2e-4) and lr[-1] == pytest.approx(1e-4)  # decay: 1 - 1/2 in the second epoch


def test_killed_process_resumes_to_the_same_weights(data_root, tmp_path):
    """SIGKILL a training process after its first checkpoint, rerun the same command, compare."""
    base = tiny_translator_config(data_root, tmp_path / "killed", max_steps=14, checkpoint_every=2, sample_every=100)
    config = write_config(tmp_path / "killed.yaml", base)
    command = [sys.executable, "-m", "vi_translate.cli", "--log-level", "WARNING", "train", str(config)]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), process.stderr.read().decode()[-2000:]
    step_at_kill = load_checkpoint(checkpoint)["step"]
    assert step_at_kill < 14
    assert subprocess.run(command, cwd=REPO, env=env, capture_output=True).returncode == 0
    straight = train_translator(build(tiny_translator_config(data_root, tmp_path / "straight", max_steps=14, checkpoint_every=2,
                                                  sample_every=100)))
    assert_same_weights(straight, checkpoint)
    assert not list((tmp_path / "killed" / "checkpoints").glob("*.tmp")), "no half-written checkpoint left"


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    original = GANLoss.forward
    calls = {"n": 0}

    def poisoned(self, prediction, target_is_real, for_discriminator=True):
        calls["n"] += 1
        loss = original(self, prediction, target_is_real, for_discriminator)
        return loss * float("nan") if calls["n"] > 6 * 4 else loss  # 6 GANLoss calls per step: step 5 fails

    monkeypatch.setattr(GANLoss, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 5: non-finite loss G_vis2ir = nan.*last good checkpoint is .*last\.pt"):
        train_translator(build(tiny_translator_config(data_root, tmp_path / "nan", max_steps=10)))
    assert load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")["step"] == 3  # untouched after step 4


def test_one_channel_infrared_and_sample_command(data_root, tmp_path, capsys):
    config = write_config(tmp_path / "gray.yaml", tiny_translator_config(data_root, tmp_path / "gray", max_steps=2))
    assert translate_main(["train", str(config), "image.ir_channels=1"]) == 0
    checkpoint = tmp_path / "gray" / "checkpoints" / "last.pt"
    assert load_checkpoint(checkpoint)["config"]["image"]["ir_channels"] == 1
    source = data_root / "cam1"
    assert translate_main(["sample", "--checkpoint", str(checkpoint), "--input", str(source), "--direction",
                           "vis2ir", "--out", str(tmp_path / "look"), "--limit", "3", "--device", "cpu"]) == 0
    written = sorted(p for p in (tmp_path / "look").glob("*_vis2ir.png") if p.name != "grid_vis2ir.png")
    assert len(written) == 3 and (tmp_path / "look" / "grid_vis2ir.png").exists()
    assert Image.open(written[0]).size == (16, 32) and Image.open(written[0]).mode == "L"  # source size, 1 channel


def test_cli_errors_name_the_problem(data_root, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", tiny_translator_config(data_root, tmp_path / "c", max_steps=1))
    assert translate_main(["train", str(config), "train.lrr=1"]) == 2
    assert "unknown config key 'train.lrr'; did you mean 'train.lr'" in capsys.readouterr().err
    assert translate_main(["train", str(config), "image.ir_channels=2"]) == 2
    assert "image.ir_channels" in capsys.readouterr().err
    train_translator(build(tiny_translator_config(data_root, tmp_path / "c", max_steps=1)))
    assert translate_main(["train", str(config), "model.ngf=8"]) == 2  # the run folder's checkpoint has ngf 4
    assert "model.ngf: 4 -> 8" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        translate_main(["train", "--help"])
    text = capsys.readouterr().out
    for word in ("CONFIG", "OVERRIDE", "--resume", "ir_channels", "max_steps", "torchrun"):
        assert word in text
    with pytest.raises(SystemExit):
        translate_main(["sample", "--help"])
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--input", "--direction", "--out", "--limit", "--device"):
        assert option in text
