"""`vi-translate evaluate`: every reported number against `reference_metrics` (numpy / scipy) on the same
images, with known translators and features on images written here, and with the trained tiny translator
through the command; the feature extractors, hand values of the paired metrics, and the errors."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import reference_metrics as reference
import vi_translate.evaluate as evaluate_module
from reid.config import ModelConfig
from reid.data import Record, load_dataset
from reid.models import build_model, save_model_checkpoint
from vi_translate.checkpoint import load_translator
from vi_translate.config import ImageConfig, TranslatorConfig
from vi_translate.evaluate import (KID_KEYS, add_parser, evaluate_cycle, evaluate_dataset, evaluate_kid,
                                   evaluate_paired, evaluate_pairs, evenly_spaced, find_pairs, run, split_pairs,
                                   split_records)
from vi_translate.extractors import reid_extractor, torchvision_extractor
from vi_translate.losses import match_channels

KNOWN_CONFIG = TranslatorConfig(image=ImageConfig(load_height=36, load_width=18, crop_height=32, crop_width=16,
                                                  ir_channels=1))


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


# ---------------------------------------------------------------------------------------------- reference values


def read_model_range(path: Path, mode: str) -> np.ndarray:
    """An image file as the model sees it, read with PIL alone: [C, H, W] float64 in [-1, 1]."""
    array = np.asarray(Image.open(path).convert(mode), dtype=np.float64) / 127.5 - 1.0
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_all(paths, mode: str) -> np.ndarray:
    return np.stack([read_model_range(path, mode) for path in paths])


def assert_scores_match(actual: dict, expected: dict) -> None:
    """A reported {psnr, ssim, l1, images} against `reference_metrics.scores` (float32 pipeline vs float64)."""
    assert actual["images"] == expected["images"]
    assert actual["psnr"] == pytest.approx(expected["psnr"], rel=1e-5)
    assert actual["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
    assert actual["l1"] == pytest.approx(expected["l1"], rel=1e-5, abs=1e-7)


def assert_kid_matches(actual: dict, expected: dict) -> None:
    """The reported KID entries {key: {mean, std, images}} against {key: ((mean, std), images)}."""
    for key, ((mean, std), images) in expected.items():
        assert actual[key]["images"] == images, key
        assert actual[key]["mean"] == pytest.approx(mean, rel=1e-4, abs=1e-6), key
        assert actual[key]["std"] == pytest.approx(std, rel=1e-4, abs=1e-6), key


def expected_kid(features: dict[str, np.ndarray], subset_size: int, num_subsets: int, seed: int) -> dict:
    """KID of translated infrared vs real infrared, translated visible vs real visible, real vs real, from the
    features of each set {"vis", "ir", "fake_vis", "fake_ir"} [n, D]."""
    pairs = {KID_KEYS["fake_ir"]: ("fake_ir", "ir"), KID_KEYS["fake_vis"]: ("fake_vis", "vis"),
             KID_KEYS["reference"]: ("vis", "ir")}
    return {key: (reference.kid(features[a], features[b], subset_size, num_subsets, seed),
                  [len(features[a]), len(features[b])]) for key, (a, b) in pairs.items()}


# ---------------------------------------------------------------------------------------------- known translators


def known_vis2ir(images: np.ndarray) -> np.ndarray:
    """[B, 3, H, W] -> [B, 1, H, W]: 0.8 luma + 0.1."""
    return 0.8 * reference.luma(images) + 0.1


def known_ir2vis(images: np.ndarray) -> np.ndarray:
    """[B, 1, H, W] -> [B, 3, H, W]: 1.3 grey - 0.1 in three channels, beyond [-1, 1] where the grey is bright
    or dark (the evaluation clamps generator outputs to [-1, 1])."""
    return np.repeat(1.3 * images - 0.1, 3, axis=1)


class NumpyTranslator(nn.Module):
    """A generator computing a numpy function of its input (float32 in and out)."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.function(images.double().numpy())).float()


KNOWN_NETS = SimpleNamespace(g_vis2ir=NumpyTranslator(known_vis2ir), g_ir2vis=NumpyTranslator(known_ir2vis))


def translate(function, images: np.ndarray) -> np.ndarray:
    """What the evaluation compares: the translator's output clamped to [-1, 1]."""
    return np.clip(function(images), -1.0, 1.0)


def pooled_features(images: np.ndarray) -> np.ndarray:
    """[B, 1 or 3, 32, 16] -> [B, 24]: the means of 8x8 cells of the three channels (grey repeated)."""
    images = reference.to_channels(np.float64(images), 3)
    return images.reshape(len(images), 3, 4, 8, 2, 8).mean((3, 5)).reshape(len(images), -1)


class PooledExtractor:
    """A feature extractor (see vi_translate.extractors) computing `pooled_features`; records each call's
    (modality, channels)."""

    name, feature_dim, weights = "pooled", 24, "none"

    def __init__(self) -> None:
        self.calls: set[tuple[str, int]] = set()

    def __call__(self, images: torch.Tensor, modality=None) -> torch.Tensor:
        self.calls.add((modality, images.shape[1]))
        return torch.from_numpy(pooled_features(images.numpy())).float()


def write_random_images(folder: Path, names: list[str], mode: str, seed: int) -> list[Path]:
    """Random 16x32 (W x H) PNG images of PIL `mode` ("RGB" or "L") named <name>.png under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        pixels = rng.integers(0, 256, (32, 16, 3) if mode == "RGB" else (32, 16), dtype=np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"{name}.png")
        paths.append(folder / f"{name}.png")
    return paths


@pytest.fixture
def known_records(tmp_path) -> list[Record]:
    """5 visible and 4 one-channel infrared random images (sorted by path)."""
    vis = write_random_images(tmp_path / "vis", [f"v{i}" for i in range(5)], "RGB", seed=1)
    ir = write_random_images(tmp_path / "ir", [f"i{i}" for i in range(4)], "L", seed=2)
    return [Record(str(path), pid=0, camid=1, modality="vis") for path in vis] + \
        [Record(str(path), pid=0, camid=3, modality="ir") for path in ir]


def expected_on_known_records(records: list[Record], vis_rows: list[int], subset_size: int, num_subsets: int,
                              seed: int) -> tuple[dict, dict, dict]:
    """(cycle, kid, images) for the known translators and `PooledExtractor` on the visible rows `vis_rows`
    and every infrared record: cycle {"vis", "ir": scores}; kid as `expected_kid`; images {"vis", "fake_ir",
    "rec_vis", "ir", "fake_vis", "rec_ir"} [n, C, H, W]."""
    vis = read_all([r.path for r in records if r.modality == "vis"], "RGB")[vis_rows]
    ir = read_all([r.path for r in records if r.modality == "ir"], "L")
    fake_ir, fake_vis = translate(known_vis2ir, vis), translate(known_ir2vis, ir)
    images = {"vis": vis, "fake_ir": fake_ir, "rec_vis": translate(known_ir2vis, fake_ir),
              "ir": ir, "fake_vis": fake_vis, "rec_ir": translate(known_vis2ir, fake_vis)}
    cycle = {"vis": reference.scores(images["rec_vis"], vis), "ir": reference.scores(images["rec_ir"], ir)}
    features = {key: pooled_features(images[key]) for key in ("vis", "ir", "fake_vis", "fake_ir")}
    return cycle, expected_kid(features, subset_size, num_subsets, seed), images


# ---------------------------------------------------------------------------------------------- library functions


def test_evaluate_dataset_matches_numpy_on_known_images(known_records):
    """limit 4 of 5 visible images: rows 0, 1, 3, 4 (evenly spaced); KID subsets of 3 of 4 rows, seed 7."""
    extractor = PooledExtractor()
    results, samples = evaluate_dataset(KNOWN_NETS, KNOWN_CONFIG, known_records, "cpu", limit=4, extractor=extractor,
                                        subset_size=3, num_subsets=5, batch_size=3, seed=7, grid_images=2)
    cycle, kid, images = expected_on_known_records(known_records, [0, 1, 3, 4], subset_size=3, num_subsets=5, seed=7)
    for modality in ("vis", "ir"):
        assert_scores_match(results["cycle"][modality], cycle[modality])
    assert_kid_matches(results["kid"], kid)
    assert {key: results["kid"][key] for key in ("extractor", "subset_size", "num_subsets", "seed")} == \
        {"extractor": "pooled", "subset_size": 3, "num_subsets": 5, "seed": 7}
    assert extractor.calls == {("vis", 3), ("ir", 1)}  # translations are passed with the modality they imitate
    for key, expected in images.items():
        np.testing.assert_allclose(samples[key].numpy(), expected[:2], atol=1e-6, err_msg=key)


def test_cycle_and_kid_functions_match_numpy_on_known_images(known_records):
    """evaluate_cycle and evaluate_kid alone; KID subsets of 4 of the 4 rows: every subset is the whole set."""
    cycle = evaluate_cycle(KNOWN_NETS, KNOWN_CONFIG, known_records, "cpu", limit=4, batch_size=2)
    kid = evaluate_kid(KNOWN_NETS, KNOWN_CONFIG, known_records, PooledExtractor(), "cpu", limit=4, subset_size=10,
                       num_subsets=3, batch_size=2)
    expected_cycle, expected_kid_values, _ = expected_on_known_records(known_records, [0, 1, 3, 4], subset_size=10,
                                                                       num_subsets=3, seed=0)
    for modality in ("vis", "ir"):
        assert_scores_match(cycle[modality], expected_cycle[modality])
    assert_kid_matches(kid, expected_kid_values)
    assert kid["subset_size"] == 4 and kid[KID_KEYS["reference"]]["std"] == pytest.approx(0.0, abs=1e-9)


def test_evaluate_paired_matches_numpy_on_known_images(tmp_path):
    """Pairs by name (a, b, c; v_only and i_only have no partner); limit 2 of 3 pairs: a and c."""
    vis = write_random_images(tmp_path / "vis", ["a", "b", "c", "v_only"], "RGB", seed=3)
    ir = write_random_images(tmp_path / "ir", ["a", "b", "c", "i_only"], "L", seed=4)
    results, samples = evaluate_paired(KNOWN_NETS, KNOWN_CONFIG, tmp_path / "vis", tmp_path / "ir", "cpu", limit=2,
                                       batch_size=1, grid_images=1)
    vis_images, ir_images = read_all([vis[0], vis[2]], "RGB"), read_all([ir[0], ir[2]], "L")
    assert results["pairs"] == 2
    assert_scores_match(results["vis2ir"], reference.scores(translate(known_vis2ir, vis_images), ir_images))
    assert_scores_match(results["ir2vis"], reference.scores(translate(known_ir2vis, ir_images), vis_images))
    np.testing.assert_allclose(samples["fake_vis"].numpy(), translate(known_ir2vis, ir_images[:1]), atol=1e-6)


# ---------------------------------------------------------------------------------------------- the command


def net_outputs(generator: nn.Module, images: np.ndarray) -> np.ndarray:
    """A trained generator's output on [B, C, H, W] float64 images, clamped to [-1, 1], as float64."""
    with torch.no_grad():
        return generator(torch.from_numpy(images).float()).clamp(-1.0, 1.0).double().numpy()


class RecordingExtractor:
    """Wraps the command's feature extractor and keeps every image it was given with its features."""

    def __init__(self, extractor) -> None:
        self.extractor, self.images, self.features = extractor, [], []

    def __getattr__(self, name: str):
        return getattr(self.extractor, name)

    def __call__(self, images: torch.Tensor, modality=None) -> torch.Tensor:
        features = self.extractor(images, modality)
        self.images.append(images.double().flatten(1))
        self.features.append(features.double())
        return features

    def features_of(self, images: np.ndarray) -> np.ndarray:
        """The features computed for each of `images` [n, C, H, W] (found within 1e-5) -> [n, D]."""
        seen, features = torch.cat(self.images).numpy(), torch.cat(self.features).numpy()
        rows = []
        for image in images.reshape(len(images), -1):
            distance = np.abs(seen - image).max(1)
            assert distance.min() < 1e-5, "the command extracted no features of this image"
            rows.append(features[distance.argmin()])
        return np.stack(rows)


def test_dataset_command_reports_the_translators_numbers(setup, tmp_path, monkeypatch):
    """The command's JSON against numpy on the images read with PIL, translated by the checkpoint's generators
    (synthetic images are stored at the trained 32x16, so nothing is resized); KID of the features the command's
    extractor gave those very images, 4-row subsets, seed 0."""
    built, build = [], evaluate_module.build_extractor

    def build_recording(*args) -> RecordingExtractor:
        built.append(RecordingExtractor(build(*args)))
        return built[-1]

    monkeypatch.setattr(evaluate_module, "build_extractor", build_recording)
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
    records = split_records(load_dataset("synthetic", setup.root), "test")
    chosen = {m: evenly_spaced([r.path for r in records if r.modality == m], 8) for m in ("vis", "ir")}
    assert results["dataset"]["images_found"] == {m: sum(r.modality == m for r in records) for m in ("vis", "ir")}
    assert len(chosen["vis"]) == 8 and 2 <= len(chosen["ir"]) < 8  # 2 test ids: fewer infrared images than 8
    nets, _ = load_translator(setup.checkpoint, "cpu")
    real = {m: read_all(chosen[m], "RGB") for m in ("vis", "ir")}
    fake = {"ir": net_outputs(nets.g_vis2ir, real["vis"]), "vis": net_outputs(nets.g_ir2vis, real["ir"])}
    rec = {"vis": net_outputs(nets.g_ir2vis, fake["ir"]), "ir": net_outputs(nets.g_vis2ir, fake["vis"])}
    for modality in ("vis", "ir"):
        assert_scores_match(results["cycle"][modality], reference.scores(rec[modality], real[modality]))
    sets = {"vis": real["vis"], "ir": real["ir"], "fake_ir": fake["ir"], "fake_vis": fake["vis"]}
    features = {name: built[0].features_of(images) for name, images in sets.items()}
    assert_kid_matches(results["kid"], expected_kid(features, 4, 5, seed=0))
    assert results["kid"]["subset_size"] == 4 and results["kid"]["num_subsets"] == 5
    assert "paired" not in results
    assert all(math.isfinite(n) for n in finite_numbers(results))
    grid = Image.open(out / "grid.png")
    assert grid.size[0] > 6 * 16 and grid.size[1] > 4 * 32  # 6 columns, 4 samples
    assert "cycle vis -> ir -> vis" in printed and "real vis vs real ir (reference)" in printed


def test_split_records_are_the_sorted_test_images_of_both_modalities(setup):
    dataset = load_dataset("synthetic", setup.root)
    records = split_records(dataset, "test")
    assert {r.modality for r in records} == {"vis", "ir"} and records == sorted(records, key=lambda r: r.path)
    assert {r.path for r in records} == {r.path for r in dataset.test_images()}
    assert split_records(dataset, "train") == sorted(dataset.train, key=lambda r: r.path)
    with pytest.raises(ValueError, match="split must be"):
        split_records(dataset, "val")


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
    names = [f"pair_{i}.jpg" for i in range(3)]
    vis, ir = (read_all([tmp_path / "pairs" / side / name for name in names], "RGB") for side in ("vis", "ir"))
    nets, _ = load_translator(setup.checkpoint, "cpu")
    assert_scores_match(paired["vis2ir"], reference.scores(net_outputs(nets.g_vis2ir, vis), ir))
    assert_scores_match(paired["ir2vis"], reference.scores(net_outputs(nets.g_ir2vis, ir), vis))
    assert Image.open(out / "grid.png").size[1] > 3 * 32  # 3 pairs
    assert "paired vis2ir vs real ir" in printed
    assert [p[0].name for p in find_pairs(tmp_path / "pairs" / "vis", tmp_path / "pairs" / "ir")] == names


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


# ---------------------------------------------------------------------------------------------- ground-truth pairs


def split_ids(root: Path, split: str) -> set[int]:
    line = (root / "exp" / f"{split}_id.txt").read_text().strip()
    return {int(token) for token in line.split(",")} if line else set()


def test_split_pairs_are_the_pairs_of_the_split_s_ids(setup):
    root = setup.root
    for split in ("val", "test"):
        ids = split_ids(root, split)
        pairs = split_pairs(root, split)
        images = sorted(p for pid in ids for p in root.glob(f"cam*/{pid:04d}/*.jpg"))
        assert ids and len(pairs) == len(images)
        assert [(vis.name, ir.name) for vis, ir in pairs] == sorted(
            (f"{p.parts[-3]}_{p.parts[-2]}_{p.name}",) * 2 for p in images)
        assert all(vis.parent == root / "paired" / "vis" and ir.parent == root / "paired" / "ir" for vis, ir in pairs)
    assert split_pairs(root, "train") == []
    with pytest.raises(ValueError, match="split must be"):
        split_pairs(root, "gallery")


def test_evaluate_pairs_baselines_match_numpy_on_one_pair(tmp_path):
    """The trivial predictions: the visible image's luma as infrared, the infrared image's channel mean as visible."""
    vis = write_random_images(tmp_path / "vis", ["a"], "RGB", seed=5)
    ir = write_random_images(tmp_path / "ir", ["a"], "RGB", seed=6)  # three unequal channels: the mean matters
    config = TranslatorConfig(image=ImageConfig(load_height=36, load_width=18, crop_height=32, crop_width=16,
                                                ir_channels=3))
    nets = SimpleNamespace(g_vis2ir=Convert(1), g_ir2vis=Convert(3))
    results, _ = evaluate_pairs(nets, config, [(vis[0], ir[0])], "cpu", baselines=True)
    vis_image, ir_image = read_all(vis, "RGB"), read_all(ir, "RGB")
    luma = np.repeat(0.299 * vis_image[:, :1] + 0.587 * vis_image[:, 1:2] + 0.114 * vis_image[:, 2:], 3, axis=1)
    grey = np.repeat(ir_image.mean(1, keepdims=True), 3, axis=1)
    baselines = results["baselines"]
    assert_scores_match(baselines["vis2ir"], reference.scores(luma, ir_image))
    assert_scores_match(baselines["ir2vis"], reference.scores(grey, vis_image))
    assert baselines["vis2ir"]["l1"] == pytest.approx(np.abs(luma - ir_image).mean(), rel=1e-5)
    assert "luma" in baselines["vis2ir"]["prediction"] and "grey" in baselines["ir2vis"]["prediction"]
    assert "baselines" not in evaluate_pairs(nets, config, [(vis[0], ir[0])], "cpu")[0]


def test_dataset_command_reports_ground_truth_pairs_and_baselines(setup, tmp_path, one_torch_thread):
    """--split val / test of a tree with paired/: every image of the split's ids is a pair, scored for the
    checkpoint's generators and the trivial baselines (numpy on the files read with PIL); --split train: none."""
    nets, _ = load_translator(setup.checkpoint, "cpu")
    for split in ("val", "test"):
        out = tmp_path / split
        code, printed = run(parse(["--checkpoint", str(setup.checkpoint), "--dataset", "synthetic", "--root",
                                   str(setup.root), "--split", split, "--extractor", f"reid:{setup.reid_checkpoint}",
                                   "--kid-subset-size", "2", "--kid-subsets", "2", "--device", "cpu", "--out",
                                   str(out)]))
        assert code == 0
        results = json.loads((out / "translator_eval.json").read_text())
        truth = results["ground_truth"]
        images = sorted(p for pid in split_ids(setup.root, split) for p in setup.root.glob(f"cam*/{pid:04d}/*.jpg"))
        assert results["dataset"]["split"] == split and sum(results["dataset"]["images_found"].values()) == len(images)
        assert truth["split"] == split and truth["pairs"] == truth["pairs_found"] == len(images) > 0
        pairs = split_pairs(setup.root, split)
        vis, ir = read_all([v for v, _ in pairs], "RGB"), read_all([i for _, i in pairs], "RGB")
        assert_scores_match(truth["vis2ir"], reference.scores(net_outputs(nets.g_vis2ir, vis), ir))
        assert_scores_match(truth["ir2vis"], reference.scores(net_outputs(nets.g_ir2vis, ir), vis))
        assert_scores_match(truth["baselines"]["vis2ir"], reference.scores(reference.luma(vis), ir))
        assert_scores_match(truth["baselines"]["ir2vis"],
                            reference.scores(np.repeat(ir.mean(1, keepdims=True), 3, axis=1), vis))
        assert f"ground truth: {len(images)} pairs of the {split} ids" in printed
        assert "baseline: visible luma" in printed and "baseline: infrared grey" in printed
        assert "cycle vis -> ir -> vis" in printed  # next to the unpaired figures
    out = tmp_path / "train"
    code, printed = run(parse(["--checkpoint", str(setup.checkpoint), "--dataset", "synthetic", "--root",
                               str(setup.root), "--split", "train", "--extractor", f"reid:{setup.reid_checkpoint}",
                               "--max-images", "4", "--kid-subset-size", "2", "--kid-subsets", "2", "--device", "cpu",
                               "--out", str(out)]))
    truth = json.loads((out / "translator_eval.json").read_text())["ground_truth"]
    assert code == 0 and truth["pairs"] == 0 and "val and test ids only" in truth["note"]
    assert "no ground-truth pairs for the train split" in printed


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
