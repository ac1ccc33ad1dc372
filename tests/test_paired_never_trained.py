"""The synthetic tree's ground-truth pairs (ROOT/paired) are for evaluation only: neither the ReID trainer nor the
translator trainer ever opens a file under paired/."""
from __future__ import annotations

from pathlib import Path

import PIL.Image
import pytest
import yaml

from reid.config import load_config
from reid.data import make_synthetic_sysu
from reid.train import train_reid
from reid.train_config import ReIDConfig
from vi_translate.config import TranslatorConfig
from vi_translate.train import train_translator

from test_reid_train import tiny_reid_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A tiny tree with pairs of its val and test ids."""
    root = tmp_path_factory.mktemp("never") / "synthetic"
    summary = make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    assert summary["pairs"] > 0 and (root / "paired" / "vis").is_dir()
    return root


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every path PIL.Image.open is given while the test runs."""
    paths: list[str] = []
    original = PIL.Image.open

    def spy(fp, *args, **kwargs):
        paths.append(str(fp))
        return original(fp, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", spy)
    return paths


def assert_only_the_camera_folders(paths: list[str], root: Path) -> None:
    under_root = [path for path in paths if Path(path).is_relative_to(root)]
    assert under_root, "the spy saw no image of the dataset: the training read images some other way"
    assert not [path for path in paths if "/paired/" in Path(path).as_posix()]
    assert {Path(path).relative_to(root).parts[0] for path in under_root} <= {f"cam{c}" for c in range(1, 7)}


def test_reid_training_never_opens_a_pair(root, tmp_path, opened):
    data = tiny_reid_config(root, None, tmp_path / "run", method="cluster_contrast")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    train_reid(load_config(ReIDConfig, tmp_path / "c.yaml"))
    assert_only_the_camera_folders(opened, root)


def test_translator_training_never_opens_a_pair(root, tmp_path, opened):
    config = load_config(TranslatorConfig, None, [  # tests/vi_translate/translator_helpers.py's tiny translator
        "data.name=synthetic", f"data.root={root}", "image.load_height=36", "image.load_width=18",
        "image.crop_height=32", "image.crop_width=16", "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
        "model.n_layers_d=2", "train.batch_size=2", "train.max_steps=2", "train.num_samples=2", "train.sample_every=1",
        "runtime.device=cpu", "runtime.workers=0", f"output_dir={tmp_path / 'run'}"])
    train_translator(config)
    assert_only_the_camera_folders(opened, root)
