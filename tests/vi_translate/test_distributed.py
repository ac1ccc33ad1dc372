"""Two processes under torchrun (gloo on the CPU): per-rank sampling, averaged gradients, rank-0 writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from reid.checkpoint import load_checkpoint
from reid.data import make_synthetic_sysu
from vi_translate.data import plan_epoch

REPO = Path(__file__).resolve().parents[2]


def test_ranks_split_each_epoch_without_overlap():
    plans = [plan_epoch(21, 9, epoch=3, seed=0, batch_size=2, rank=r, world_size=2) for r in (0, 1)]
    single = plan_epoch(21, 9, epoch=3, seed=0, batch_size=2)
    assert len(plans[0].items) == len(plans[1].items) == 10
    assert sorted(plans[0].items + plans[1].items) == sorted(single.items[:20])
    assert plans[0].steps == 5 and plans[0].from_step(4) == plans[0].items[8:10]
    assert plan_epoch(21, 9, epoch=4, seed=0, batch_size=2).items != single.items  # reshuffled each epoch


def test_torchrun_two_processes(tmp_path):
    data = tmp_path / "synthetic"
    make_synthetic_sysu(data, num_ids=6, seed=0, images_per_camera=1, height=32, width=16)
    config = {"data": {"name": "synthetic", "root": str(data)},
              "image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
              "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
              "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "max_steps": 4, "log_every": 2,
                        "sample_every": 4, "checkpoint_every": 2},
              "runtime": {"device": "cpu", "workers": 0}, "output_dir": str(tmp_path / "run")}
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
               "-m", "vi_translate.cli", "--log-level", "WARNING", "train", str(tmp_path / "ddp.yaml")]
    result = subprocess.run(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert checkpoint["step"] == 4 and checkpoint["state"]["position"]["step_in_epoch"] == 4  # 10 items / 2 ranks / 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]  # written once, by rank 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state"]["nets"]["g_vis2ir"].values())
