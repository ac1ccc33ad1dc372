"""`vireid pretrain`: the labelled start (the role of ImageNet weights) reads only visible training images of its own
population, loads into both stems and the trunk, resumes to an uninterrupted run, and a start of the benchmark's own
population is refused."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from reid.checkpoint import CheckpointError
from reid.cli import main as vireid_main
from reid.config import ConfigError, config_from_dict, load_config
from reid.data import make_synthetic_sysu
from reid.models import SHIPPED_STARTS, build_model, read_backbone
from reid.models.weights import shipped_start
from reid.pretrain import check_disjoint_start, pretrain_backbone, random_grey
from reid.pretrain_config import PretrainConfig
from reid.resume import ResumeError
from reid.train import evaluate_start, train_reid
from reid.train_config import ReIDConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BENCHMARK_DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmark.md"  # where the start is described
VISIBLE_CAMERAS = {"cam1", "cam2", "cam4", "cam5"}


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """The pretraining population: a synthetic tree of seed 7 (not a benchmark's)."""
    root = tmp_path_factory.mktemp("pretrain") / "population"
    make_synthetic_sysu(root, num_ids=8, seed=7, images_per_camera=1, height=32, width=16, test_fraction=0.25)
    return root


def pretrain_config(root: Path, out: Path, **train) -> PretrainConfig:
    return config_from_dict(PretrainConfig, {
        "data": {"name": "synthetic", "root": str(root)}, "model": {"arch": "tiny", "height": 32, "width": 16},
        "train": {"steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 2, "checkpoint_every": 3, **train},
        "augment": {"grayscale": 0.5, "color_jitter": 0.2},
        "runtime": {"device": "cpu", "workers": 0, "seed": 1}, "output_dir": str(out)})


@pytest.fixture(scope="module")
def backbone(population, tmp_path_factory):
    return pretrain_backbone(pretrain_config(population, tmp_path_factory.mktemp("run") / "pretrain"))


def test_pretraining_reads_only_visible_images_of_its_own_population(population, tmp_path, monkeypatch):
    import reid.pretrain as pretrain

    opened = {"training": [], "held-out check": []}
    phase = ["training"]
    open_image, heldout = Image.open, pretrain.heldout_retrieval

    def spy(path, *args, **kwargs):
        opened[phase[0]].append(Path(path))
        return open_image(path, *args, **kwargs)

    def check(*args, **kwargs):
        phase[0] = "held-out check"
        return heldout(*args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    monkeypatch.setattr(pretrain, "heldout_retrieval", check)
    pretrain_backbone(pretrain_config(population, tmp_path / "run"))
    ids = {name: {int(i) for i in (population / "exp" / f"{name}_id.txt").read_text().split(",")}
           for name in ("train", "val", "test")}
    for name, paths in opened.items():
        assert paths, name
        assert {path.relative_to(population).parts[0] for path in paths} <= VISIBLE_CAMERAS  # never cam3 / cam6
    # trained on the training ids (SYSU-MM01's train + val), the test ids read only by the held-out check
    assert {int(path.parent.name) for path in opened["training"]} == ids["train"] | ids["val"]
    assert {int(path.parent.name) for path in opened["held-out check"]} == ids["test"]


def test_the_backbone_goes_into_both_stems_and_the_trunk(backbone):
    state = read_backbone(backbone)["state"]
    model = build_model("tiny", pretrained=str(backbone))
    for modality in ("vis", "ir"):
        for key, value in model.stems[modality].state_dict().items():
            torch.testing.assert_close(value, state["stem"][key], rtol=0, atol=0)
    for key, value in model.trunk.state_dict().items():
        torch.testing.assert_close(value, state["trunk"][key], rtol=0, atol=0)
    fresh = build_model("tiny")
    torch.testing.assert_close(model.neck.weight, fresh.neck.weight)  # no neck in the start, as over ImageNet
    assert not torch.equal(model.stems["vis"][0].weight, fresh.stems["vis"][0].weight)


def test_the_backbone_records_what_it_was_trained_on(backbone, population):
    report = read_backbone(backbone)["state"]["report"]
    assert report["modalities"] == ["vis"] and report["population"]["synthetic"]["seed"] == 7
    assert report["identities"] == 6 and report["heldout_ids"] == 2  # 8 ids, 2 of them test
    assert 0.0 <= report["heldout_mAP"] <= 1.0


def test_a_start_of_the_benchmark_population_is_refused(backbone, population, tmp_path):
    config = config_from_dict(ReIDConfig, {
        "data": {"name": "synthetic", "root": str(population)}, "method": {"name": "oracle"},
        "model": {"arch": "tiny", "height": 32, "width": 16, "pretrained": str(backbone)},
        "train": {"iterations": 1, "num_identities": 2, "num_instances": 2, "stages": {"intra": {"epochs": 1}}},
        "eval": {"trials": 1}, "runtime": {"device": "cpu", "workers": 0}, "output_dir": str(tmp_path / "r")})
    for run in (train_reid, evaluate_start):
        with pytest.raises(ValueError, match="synthetic population of seed 7.*has seen this benchmark's identities"):
            run(config)
    other = tmp_path / "benchmark"
    make_synthetic_sysu(other, num_ids=4, seed=8, images_per_camera=1, height=32, width=16)
    from reid.data import load_dataset
    check_disjoint_start(str(backbone), "tiny", load_dataset("synthetic", other))  # another seed passes


def test_the_start_alone_is_evaluated_as_a_run_of_no_epoch(backbone, tmp_path):
    benchmark = tmp_path / "benchmark"
    make_synthetic_sysu(benchmark, num_ids=4, seed=8, images_per_camera=1, height=32, width=16)
    config = config_from_dict(ReIDConfig, {
        "data": {"name": "synthetic", "root": str(benchmark)}, "method": {"name": "oracle"},
        "model": {"arch": "tiny", "height": 32, "width": 16, "pretrained": str(backbone)},
        "eval": {"trials": 1, "settings": ["all-single"]}, "runtime": {"device": "cpu", "workers": 0},
        "output_dir": str(tmp_path / "start")})
    checkpoint = evaluate_start(config)
    record = json.loads((tmp_path / "start" / "metrics.jsonl").read_text())
    assert record["epoch"] == 0 and record["stage"] == "start" and 0 <= record["eval"]["all-single"]["mAP"] <= 1
    loaded = torch.load(checkpoint, weights_only=True)["state"]["model"]
    torch.testing.assert_close(loaded["trunk.0.conv.weight"], read_backbone(backbone)["state"]["trunk"]["0.conv.weight"])


def test_a_resumed_pretraining_ends_on_the_weights_of_an_uninterrupted_one(population, backbone, tmp_path, monkeypatch):
    import reid.pretrain as pretrain

    step = pretrain._Pretraining._train_step

    def interrupted(self, index):
        if index == 4:  # after the checkpoint of step 3
            raise KeyboardInterrupt
        return step(self, index)

    monkeypatch.setattr(pretrain._Pretraining, "_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain_backbone(pretrain_config(population, tmp_path / "run"))
    monkeypatch.setattr(pretrain._Pretraining, "_train_step", step)
    resumed = pretrain_backbone(pretrain_config(population, tmp_path / "run"))
    whole, again = read_backbone(backbone)["state"], read_backbone(resumed)["state"]
    for part in ("stem", "trunk"):
        for key, value in whole[part].items():
            torch.testing.assert_close(again[part][key], value, rtol=0, atol=0)
    lines = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [2, 4, 6]  # the line of step 4, trained again, once
    with pytest.raises(ResumeError, match="train.lr"):
        pretrain_backbone(pretrain_config(population, tmp_path / "run", lr=0.5))


def test_random_grey_replaces_chosen_images_by_their_luminance():
    images = torch.randn(64, 3, 4, 4)
    generator = torch.Generator().manual_seed(0)
    out = random_grey(images, 0.5, generator)
    grey = (out[:, 0] == out[:, 1]).all(dim=(1, 2)) & (out[:, 1] == out[:, 2]).all(dim=(1, 2))
    # a grey image is the same pixel value in the three channels once de-normalised: check one
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = out * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    same = (pixels.max(1).values - pixels.min(1).values).abs().amax(dim=(1, 2)) < 1e-5
    assert 16 < int(same.sum()) < 48 and not grey.all()
    expected = (images[same] * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)) * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels[same][:, 0], expected.sum(1))
    torch.testing.assert_close(out[~same], images[~same])
    assert torch.equal(random_grey(images, 0.0, generator), images)


def test_bad_pretraining_configs_are_named(population, tmp_path):
    with pytest.raises(ConfigError, match="model.pretrained must be null"):
        config_from_dict(PretrainConfig, {"model": {"pretrained": "imagenet"}})
    with pytest.raises(ConfigError, match="augment.grayscale must lie in"):
        config_from_dict(PretrainConfig, {"augment": {"grayscale": 2.0}})
    with pytest.raises(ConfigError, match="train.steps must be >= 1"):
        config_from_dict(PretrainConfig, {"train": {"steps": 0}})
    with pytest.raises(CheckpointError, match="holds a 'tiny' backbone; the model is 'small'"):
        build_model("small", pretrained=str(pretrain_backbone(pretrain_config(population, tmp_path / "r"))))
    with pytest.raises(FileNotFoundError, match="no 'synthetic-visible' start is shipped for 'tiny'"):
        build_model("tiny", pretrained="synthetic-visible")


def test_vireid_pretrain_prints_the_file_and_its_hash(population, tmp_path, capsys):
    config = tmp_path / "pretrain.yaml"
    config.write_text(json.dumps({"data": {"name": "synthetic", "root": str(population)},
                                  "model": {"arch": "tiny", "height": 32, "width": 16},
                                  "runtime": {"device": "cpu", "workers": 0}}))
    assert vireid_main(["pretrain", str(config), "train.steps=2", "train.batch_size=4",
                        f"output_dir={tmp_path / 'out'}"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sha256"] == hashlib.sha256((tmp_path / "out" / "backbone.pt").read_bytes()).hexdigest()
    assert printed["arch"] == "tiny" and printed["modalities"] == ["vis"]


def test_the_shipped_start_is_the_one_the_docs_describe():
    path = shipped_start("small", "synthetic-visible")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in BENCHMARK_DOC.read_text(), "docs/benchmark.md must give the shipped start's sha256"
    report = read_backbone(path)["state"]["report"]
    assert report["modalities"] == ["vis"]
    demo_seed = 0
    assert report["population"]["synthetic"]["seed"] != demo_seed
    model = build_model("small", pretrained="synthetic-visible")
    assert torch.equal(model.stems["vis"][0].weight, model.stems["ir"][0].weight)
    assert set(SHIPPED_STARTS) == {"synthetic-visible"}
    assert re.search(r"vireid pretrain experiments/configs/pretrain/synthetic_visible\.yaml", BENCHMARK_DOC.read_text())
