"""The public Python API (`reid.__all__`, `vi_translate.__all__`, docs/api.md): its examples run as written, in a
folder laid out as `make demo` leaves it (tiny models in place of the demo's), and each function equals the
command-line path it stands for: FeatureExtractor = the evaluation's features (`extract_features`), rank = a
ranking by hand, evaluate_features = `vireid evaluate --features`, Translator = the translation `vi-translate
translate` writes, before PNG encoding."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import reid
import vi_translate
from reid.config import ModelConfig
from reid.data import make_synthetic_sysu, read_image
from reid.features import extract_features
from reid.models import build_model, save_model_checkpoint
from vi_translate.data import resize_for_model, to_image, to_model_range
from vi_translate.train import train_translator

from translator_helpers import build_translator_config, tiny_translator_config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """data/synthetic and runs/experiments/demo/{reid/joint/seed_0,translator}/checkpoints/last.pt, tiny."""
    folder = tmp_path_factory.mktemp("demo")
    make_synthetic_sysu(folder / "data" / "synthetic", num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    torch.manual_seed(0)
    model = build_model("tiny").train()
    for _ in range(2):  # BN statistics away from their initial values
        model(torch.randn(4, 3, 32, 16), torch.tensor([False, True, False, True]))
    demo = folder / "runs" / "experiments" / "demo"
    save_model_checkpoint(demo / "reid" / "joint" / "seed_0" / "checkpoints" / "last.pt", model.eval(),
                          ModelConfig(arch="tiny", height=32, width=16))
    translator = train_translator(build_translator_config(tiny_translator_config(
        folder / "data" / "synthetic", folder / "translator_run", max_steps=2)))
    (demo / "translator" / "checkpoints").mkdir(parents=True)
    shutil.copyfile(translator, demo / "translator" / "checkpoints" / "last.pt")
    return folder


@pytest.fixture
def in_demo_folder(demo_folder, monkeypatch) -> Path:
    monkeypatch.chdir(demo_folder)
    return demo_folder


CHECKPOINT = "runs/experiments/demo/reid/joint/seed_0/checkpoints/last.pt"
TRANSLATOR = "runs/experiments/demo/translator/checkpoints/last.pt"


def doc_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_the_documented_examples_run_in_a_demo_folder(in_demo_folder, capsys):
    examples = doc_examples()
    assert len(examples) == 4
    namespace: dict = {}
    for example in examples:
        exec(compile(example, str(DOCS), "exec"), namespace)
    printed = capsys.readouterr().out
    assert "all-single" in printed and Path("gallery_ir.pt").exists() and Path("first_vis2ir.png").exists()
    assert Path("test_features.pt").exists()


def test_the_exported_names_are_the_documented_ones():
    assert sorted(reid.__all__) == sorted(["FeatureExtractor", "rank", "evaluate_features", "FeatureSet",
                                           "load_dataset", "Record", "make_synthetic_sysu", "__version__"])
    assert sorted(vi_translate.__all__) == ["Translator", "__version__"]
    text = DOCS.read_text()
    for name in [*reid.__all__, *vi_translate.__all__]:
        if name != "__version__":
            assert f"`{'vi_translate' if name == 'Translator' else 'reid'}.{name}" in text, name
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        reid.nothing  # noqa: B018


def test_feature_extractor_equals_the_evaluation_s_features(in_demo_folder):
    extractor = reid.FeatureExtractor(CHECKPOINT, device="cpu", batch_size=3)
    records = reid.load_dataset("synthetic", "data/synthetic").train[:7]
    expected = extract_features(extractor.model, records, torch.device("cpu"), height=32, width=16, progress=False)
    paths, modalities = [r.path for r in records], [r.modality for r in records]
    torch.testing.assert_close(extractor(paths, modality=modalities), expected, rtol=0, atol=1e-6)
    images = [read_image(path) for path in paths]
    arrays = [np.asarray(image) for image in images]
    torch.testing.assert_close(extractor(images, modalities), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(extractor(arrays, modalities), expected, rtol=0, atol=1e-6)
    as_ir = extractor(paths, modality="ir")  # another stem: other features
    assert not torch.allclose(as_ir[[i for i, m in enumerate(modalities) if m == "vis"]],
                              expected[[i for i, m in enumerate(modalities) if m == "vis"]], atol=1e-4)
    unflipped = reid.FeatureExtractor(CHECKPOINT, device="cpu", flip=False)(paths, modalities)
    torch.testing.assert_close(unflipped, extract_features(extractor.model, records, torch.device("cpu"), height=32,
                                                           width=16, flip=False, progress=False), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="modality must be one of"):
        extractor(paths, modality="thermal")
    with pytest.raises(ValueError, match="2 modalities for 7 images"):
        extractor(paths, modality=["vis", "ir"])


def test_rank_equals_a_ranking_by_hand_and_takes_feature_sets(in_demo_folder):
    extractor = reid.FeatureExtractor(CHECKPOINT, device="cpu")
    gallery = extractor.embed_folder("data/synthetic/cam3", modality="ir")
    query = extractor.embed_folder("data/synthetic/cam1", modality="vis")
    indices, similarities = reid.rank(query, gallery, top_k=4)
    by_hand = query.features @ gallery.features.T
    np.testing.assert_array_equal(indices, torch.argsort(-by_hand, dim=1, stable=True)[:, :4].numpy())
    np.testing.assert_allclose(similarities, torch.sort(by_hand, dim=1, descending=True).values[:, :4].numpy(),
                               atol=1e-6)
    same = reid.rank(query.features, gallery.features, top_k=4)
    np.testing.assert_array_equal(same[0], indices)


def test_evaluate_features_equals_vireid_evaluate(in_demo_folder, capsys):
    from reid.cli import main as vireid_main

    dataset = reid.load_dataset("synthetic", "data/synthetic")
    records = sorted({r.path: r for s in dataset.test_split(mode="all", trial=0, shots=1) for r in s}.values(),
                     key=lambda record: record.path)
    extractor = reid.FeatureExtractor(CHECKPOINT, device="cpu")
    features = reid.FeatureSet(records, extractor([r.path for r in records], [r.modality for r in records]))
    features.save("features.pt", root="data/synthetic")
    result = reid.evaluate_features("features.pt", dataset, settings=["all-single"], trials=1)
    assert vireid_main(["evaluate", "--features", "features.pt", "--dataset", "synthetic", "--root", "data/synthetic",
                        "--settings", "all-single", "--trials", "1", "--out", "eval.json"]) == 0
    assert result.table() in capsys.readouterr().out
    direct = reid.evaluate_features(features, dataset, settings=["all-single"], trials=1)
    assert direct.settings["all-single"].mean() == result.settings["all-single"].mean()


def test_translator_equals_the_written_translation_before_encoding(in_demo_folder):
    translator = vi_translate.Translator(TRANSLATOR, device="cpu", batch_size=2)
    paths = sorted(str(p) for p in Path("data/synthetic/cam1").rglob("*.jpg"))[:3]
    views = translator(paths, direction="vis2ir")
    nets, config = translator.nets, translator.config
    for path, view in zip(paths, views):
        image = read_image(path)
        with torch.no_grad():
            expected = nets.g_vis2ir(to_model_range(resize_for_model(image, config.image))[None])[0]
        assert view.size == image.size
        assert np.array_equal(np.asarray(view), np.asarray(to_image(expected).resize(image.size, Image.BICUBIC)))
    back = translator([np.asarray(views[0])], direction="ir2vis")
    assert back[0].mode == "RGB" and back[0].size == views[0].size
    larger = read_image(paths[0]).resize((23, 47))  # not the trained crop size (16 x 32): resized there and back
    assert translator([larger], direction="vis2ir")[0].size == (23, 47)
    with pytest.raises(ValueError, match="direction must be one of"):
        translator(paths, direction="rgb2ir")
