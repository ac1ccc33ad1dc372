"""`vireid train` under torchrun with two CPU processes (gloo): features gathered for clustering on
rank 0, labels broadcast, rank 0 writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from reid.checkpoint import load_checkpoint
from reid.data import make_synthetic_sysu

REPO = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes(tmp_path):
    root = tmp_path / "synthetic"
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    config = {"data": {"name": "synthetic", "root": str(root)},
              "model": {"arch": "tiny", "height": 32, "width": 16},
              "augment": {"pad": 2},
              "cluster": {"k1": 6, "k2": 2, "min_samples": 2},
              "train": {"iterations": 2, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                        "stages": {"intra": {"epochs": 1}, "cross": {"epochs": 1, "labels": "hungarian"}}},
              "eval": {"every": 2, "trials": 1, "settings": ["all-single"]},
              "runtime": {"device": "cpu", "workers": 0, "log_level": "WARNING"},
              "output_dir": str(tmp_path / "run")}
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29544",
               "-m", "reid.cli", "train", str(tmp_path / "ddp.yaml")]
    result = subprocess.run(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", kind="reid")["step"] == 2
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]  # written once, by rank 0
    from reid.data import load_dataset
    assert lines[1]["cluster"]["num_samples"] == len(load_dataset("synthetic", root).train)  # every image, all ranks
    assert "all-single" in lines[1]["eval"]
