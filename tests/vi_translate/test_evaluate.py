"""`vi-translate evaluate`: the command on a synthetic dataset and on paired folders, the feature extractors,
hand values of the paired metrics, and the errors."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from torch import nn

from reid.config import ModelConfig
from reid.models import build_model, save_model_checkpoint
from vi_translate.config import ImageConfig, TranslatorConfig
from vi_translate.evaluate import (KID_KEYS, add_parser, evaluate_cycle, evaluate_kid, evaluate_paired, evenly_spaced,
                                   find_pairs, run, split_records)
from vi_translate.extractors import reid_extractor, torchvision_extractor
from vi_translate.losses import match_channels


@pytest.fixture(scope="module")
def setup(tiny_dataset, tiny_translator, tmp_path_factory) -> SimpleNamespace:
    """The shared tiny dataset and translator, and a tiny ReID checkpoint."""
    base = tmp_path_factory.mktemp("evaluate")
    reid_model = build_model("tiny")
    with torch.no_grad():  # both stems start as copies: make the infrared one differ
        for parameter in reid_model.stems["ir"].parameters():
            parameter.add_(0.1)
    reid_checkpoint = save_model_checkpoint(base / "reid.pt", reid_model, ModelConfig(arch="tiny", height=32, width=16))
    return SimpleNamespace(root=tiny_dataset, checkpoint=tiny_translator, reid_checkpoint=reid_checkpoint, base=base)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vi-translate")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *argv])


def finite_numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in finite_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in finite_numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_dataset_evaluation_writes_json_grid_and_table(setup, tmp_path, capsys):
    out = tmp_path / "eval"
    args = parse(["--checkpoint", str(setup.checkpoint), "--dataset", "synthetic", "--root", str(setup.root),
                  "--extractor", "torchvision:resnet18", "--extractor-weights", "random", "--max-images", "8",
                  "--kid-subset-size", "4", "--kid-subsets", "5", "--device", "cpu", "--batch-size", "3",
                  "--out", str(out)])
    code, printed = run(args)
    assert code == 0
    results = json.loads((out / "translator_eval.json").read_text())
    assert results["dataset"]["split"] == "test" and results["image"] == {"height": 32, "width": 16, "ir_channels": 3}
    assert results["extractor"] == {"name": "torchvision:resnet18", "weights": "random", "feature_dim": 512}
    found = results["dataset"]["images_found"]
    assert found["vis"] > 8 and 2 <= found["ir"] <= 8  # 2 test ids: 7 infrared test images here
    used = {modality: min(8, found[modality]) for modality in ("vis", "ir")}
    for modality in ("vis", "ir"):
        cycle = results["cycle"][modality]
        assert cycle["images"] == used[modality] and 0 < cycle["psnr"] < 60 and -1 <= cycle["ssim"] <= 1 and 0 < cycle["l1"] < 2
    kid = results["kid"]
    assert kid["subset_size"] == 4 and kid["num_subsets"] == 5 and kid["extractor"] == "torchvision:resnet18"
    expected_counts = {"vis2ir_vs_real_ir": [used["vis"], used["ir"]], "ir2vis_vs_real_vis": [used["ir"], used["vis"]],
                       "real_vis_vs_real_ir": [used["vis"], used["ir"]]}
    for key, counts in expected_counts.items():
        assert kid[key]["images"] == counts and kid[key]["std"] >= 0
    assert "paired" not in results
    assert all(math.isfinite(n) for n in finite_numbers(results))
    grid = Image.open(out / "grid.png")
    assert grid.size[0] > 6 * 16 and grid.size[1] > 4 * 32  # 6 columns, 4 samples
    table = printed
    assert "cycle vis -> ir -> vis" in table and "real vis vs real ir (reference)" in table


def test_library_functions_agree_with_the_command_pass(setup):
    from vi_translate.checkpoint import load_translator
    from reid.data import load_dataset

    nets, config = load_translator(setup.checkpoint, "cpu")
    records = split_records(load_dataset("synthetic", setup.root), "test")
    assert {r.modality for r in records} == {"vis", "ir"} and records == sorted(records, key=lambda r: r.path)
    cycle = evaluate_cycle(nets, config, records, "cpu", limit=4, batch_size=3)
    assert cycle["vis"]["images"] == 4 and cycle["ir"]["images"] == 4
    extractor = torchvision_extractor("resnet18", None, "cpu", image_size=64)
    first = evaluate_kid(nets, config, records, extractor, "cpu", limit=4, subset_size=3, num_subsets=4)
    again = evaluate_kid(nets, config, records, extractor, "cpu", limit=4, subset_size=3, num_subsets=4)
    assert first == again and first["subset_size"] == 3  # deterministic: same images, same subsets


def make_pairs(root: Path, folder: Path, count: int) -> None:
    """`count` (visible, infrared) pairs named pair_<i>: cam1 and cam3 images of the first identities."""
    vis_images = sorted((root / "cam1").rglob("*.jpg"))[:count]
    ir_images = sorted((root / "cam3").rglob("*.jpg"))[:count]
    (folder / "vis").mkdir(parents=True)
    (folder / "ir").mkdir()
    for i, (vis, ir) in enumerate(zip(vis_images, ir_images)):
        shutil.copy(vis, folder / "vis" / f"pair_{i}.jpg")
        shutil.copy(ir, folder / "ir" / f"pair_{i}.jpg")
    shutil.copy(vis_images[0], folder / "vis" / "unpaired.jpg")


def test_paired_folders(setup, tmp_path, capsys):
    make_pairs(setup.root, tmp_path / "pairs", 3)
    out = tmp_path / "paired_eval"
    args = parse(["--checkpoint", str(setup.checkpoint), "--paired-vis", str(tmp_path / "pairs" / "vis"),
                  "--paired-ir", str(tmp_path / "pairs" / "ir"), "--device", "cpu", "--out", str(out)])
    code, printed = run(args)
    assert code == 0
    results = json.loads((out / "translator_eval.json").read_text())
    assert "cycle" not in results and "kid" not in results
    paired = results["paired"]
    assert paired["pairs"] == 3
    for direction in ("vis2ir", "ir2vis"):
        assert paired[direction]["images"] == 3 and 0 < paired[direction]["psnr"] < 60
    assert Image.open(out / "grid.png").size[1] > 3 * 32  # 3 pairs
    assert "paired vis2ir vs real ir" in printed
    assert [p[0].name for p in find_pairs(tmp_path / "pairs" / "vis", tmp_path / "pairs" / "ir")] == \
        ["pair_0.jpg", "pair_1.jpg", "pair_2.jpg"]


class Convert(nn.Module):
    """An 'identity translator': only converts the channel count (grey repeated, or luma)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return match_channels(images, self.channels)


def test_paired_metrics_hand_values_with_one_channel_infrared(tmp_path):
    """Flat grey 100 visible images against flat 110 infrared ones: every error is 10 / 127.5 in [-1, 1]."""
    (tmp_path / "vis").mkdir()
    (tmp_path / "ir").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (20, 40), (100, 100, 100)).save(tmp_path / "vis" / f"{name}.png")
        Image.new("L", (20, 40), 110).save(tmp_path / "ir" / f"{name}.png")
    nets = SimpleNamespace(g_vis2ir=Convert(1), g_ir2vis=Convert(3))
    config = TranslatorConfig(image=ImageConfig(load_height=36, load_width=18, crop_height=32, crop_width=16,
                                                ir_channels=1))
    results, samples = evaluate_paired(nets, config, tmp_path / "vis", tmp_path / "ir", "cpu", grid_images=1)
    error = 10 / 127.5
    c1 = 0.01 ** 2
    flat_ssim = (2 * (100 / 255) * (110 / 255) + c1) / ((100 / 255) ** 2 + (110 / 255) ** 2 + c1)
    for direction in ("vis2ir", "ir2vis"):
        values = results[direction]
        assert values["images"] == 2
        assert values["psnr"] == pytest.approx(20 * math.log10(2 / error), abs=1e-3)  # 28.13 dB
        assert values["l1"] == pytest.approx(error, rel=1e-4)
        assert values["ssim"] == pytest.approx(flat_ssim, abs=1e-3)
    assert samples["fake_ir"].shape == (1, 1, 32, 16) and samples["fake_vis"].shape == (1, 3, 32, 16)


def test_paired_folders_without_common_names_name_both_folders(tmp_path):
    for folder, name in (("vis", "x.png"), ("ir", "y.png")):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (16, 32)).save(tmp_path / folder / name)
    with pytest.raises(ValueError, match=r"no registered pairs.*vis.*x.*ir.*y"):
        find_pairs(tmp_path / "vis", tmp_path / "ir")


def test_reid_extractor_command_and_modality(setup, tmp_path):
    extractor = reid_extractor(setup.reid_checkpoint, "cpu")
    images = torch.rand(3, 1, 40, 20) * 2 - 1  # one channel, another size: repeated and resized
    vis, ir = extractor(images, "vis"), extractor(images, "ir")
    assert vis.shape == (3, 64) and vis.dtype == torch.float32
    assert not torch.allclose(vis, ir)  # the infrared stem differs from the visible one
    with pytest.raises(ValueError, match="modality"):
        extractor(images)
    args = parse(["--checkpoint", str(setup.checkpoint), "--dataset", "synthetic", "--root", str(setup.root),
                  "--extractor", f"reid:{setup.reid_checkpoint}", "--max-images", "5", "--kid-subset-size", "4",
                  "--kid-subsets", "3", "--device", "cpu", "--out", str(tmp_path / "out")])
    code, printed = run(args)
    assert code == 0
    results = json.loads((tmp_path / "out" / "translator_eval.json").read_text())
    assert results["extractor"]["feature_dim"] == 64 and results["kid"][KID_KEYS["fake_vis"]]["images"][1] == 5


def test_torchvision_weights_from_the_hub_cache_or_a_path(tmp_path, monkeypatch):
    """'imagenet' reads torchvision's file name from TORCH_HOME/hub/checkpoints (a stand-in state dict here)."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    torch.save(state, tmp_path / "mine.pth")
    images = torch.rand(2, 3, 32, 16) * 2 - 1
    from_cache = torchvision_extractor("resnet18", "imagenet", "cpu", image_size=64)
    from_path = torchvision_extractor("resnet18", tmp_path / "mine.pth", "cpu", image_size=64)
    assert from_cache.weights == str(cached) and from_cache.feature_dim == 512
    assert torch.allclose(from_cache(images), from_path(images))
    with pytest.raises(ValueError, match="unknown torchvision classifier"):
        torchvision_extractor("resnet1000", None)


def test_missing_imagenet_weights_name_the_paths_tried(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    args = parse(["--checkpoint", str(setup.checkpoint), "--dataset", "synthetic", "--root", str(setup.root),
                  "--out", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError) as error:
        run(args)
    message = str(error.value)
    hub = tmp_path / "empty" / "hub" / "checkpoints"
    assert str(hub / "resnet50-0676ba61.pth") in message and str(hub / "resnet50-11ad3fa6.pth") in message
    assert "--extractor-weights random" in message and "--extractor-weights PATH" in message
    assert not (tmp_path / "out").exists()


def test_input_errors(setup, tmp_path):
    with pytest.raises(ValueError, match="nothing to evaluate"):
        run(parse(["--checkpoint", str(setup.checkpoint), "--out", str(tmp_path)]))
    with pytest.raises(ValueError, match="needs --root"):
        run(parse(["--checkpoint", str(setup.checkpoint), "--dataset", "sysu", "--out", str(tmp_path)]))
    with pytest.raises(ValueError, match="go together"):
        run(parse(["--checkpoint", str(setup.checkpoint), "--paired-vis", str(tmp_path), "--out", str(tmp_path)]))
    with pytest.raises(ValueError, match="torchvision:ARCH"):
        run(parse(["--checkpoint", str(setup.checkpoint), "--dataset", "synthetic", "--root", str(setup.root),
                   "--extractor", "resnet50", "--out", str(tmp_path)]))
    with pytest.raises(SystemExit):
        parse(["--checkpoint", "x", "--out", "y", "--max-images", "0"])


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--dataset", "--root", "--split", "--trial", "--paired-vis", "--paired-ir",
                   "--extractor", "--extractor-weights", "--max-images", "--kid-subset-size", "--kid-subsets",
                   "--device", "--batch-size", "--out"):
        assert option in text
    assert "translator_eval.json" in text and "random" in text


def test_evenly_spaced():
    assert evenly_spaced(range(10), 3) == [0, 4, 9]  # linspace 0, 4.5, 9 rounded half to even
    assert evenly_spaced(range(3), 5) == [0, 1, 2] and evenly_spaced([], None) == []
