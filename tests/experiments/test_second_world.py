"""The second world (`python -m experiments.second_world`): the generator's layout and splits, other looks.

It patches the generator's modules in its own process, so it runs here in a subprocess."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image

from reid.data import load_dataset, make_synthetic_sysu

OPTIONS = dict(num_ids=4, seed=11, images_per_camera=1, test_fraction=0.5, val_fraction=0.25)


def _second_world(root):
    args = [f"--{key.replace('_', '-')}={value}" for key, value in OPTIONS.items()]
    done = subprocess.run([sys.executable, "-m", "experiments.second_world", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_second_world_has_the_generator_s_layout_and_splits_and_other_images(tmp_path):
    world2, world1 = tmp_path / "world2", tmp_path / "world1"
    assert "second world at" in _second_world(world2)
    make_synthetic_sysu(world1, **OPTIONS)
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
                                and p.parts[len(root.parts)] != "paired")  # the second world has no pairs
    assert files(world2) == files(world1)
    assert not (world2 / "paired").exists()
    for name in ("train_id.txt", "val_id.txt", "test_id.txt"):
        assert (world2 / "exp" / name).read_text() == (world1 / "exp" / name).read_text()
    dataset = load_dataset("sysu", world2)
    assert len(dataset.train) == len(load_dataset("sysu", world1).train) > 0
    for record in dataset.train[:6]:
        relative = record.path[len(str(world2)) + 1:]
        two, one = (np.asarray(Image.open(root / relative), dtype=np.float32) for root in (world2, world1))
        assert np.abs(two - one).mean() > 5, relative  # other colours, scenes and sensors

