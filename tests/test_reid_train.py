"""The unsupervised ReID loop end to end on a tiny synthetic dataset with translated views."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from reid.checkpoint import load_checkpoint
from reid.cli import main as vireid_main
from reid.config import load_config
from reid.data import load_dataset, make_synthetic_sysu
from reid.data.translated import SUMMARY_NAME, ManifestEntry, append_manifest, output_relpath
from reid.pseudo_labels import PseudoLabels
from reid.train import same_identities_in_both_halves, train_reid
from reid.train_config import ReIDConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny synthetic dataset and a stand-in translated copy (greyscale / coloured-noise views), so the
    ReID loop is tested without training a translator."""
    base = tmp_path_factory.mktemp("reid")
    root = base / "synthetic"
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    translated = base / "translated"
    entries = []
    for record in load_dataset("synthetic", root).train:
        source = Path(record.path).relative_to(root).as_posix()
        image = torch.from_numpy(np.array(Image.open(record.path).convert("RGB"))).float()
        view = image.mean(dim=2, keepdim=True).expand_as(image) if record.modality == "vis" else image * torch.tensor([1.0, 0.8, 0.6])
        target = translated / output_relpath(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(view.clamp(0, 255).byte().numpy()).save(target)
        entries.append(ManifestEntry(source, output_relpath(source), "vis2ir" if record.modality == "vis" else "ir2vis", "done"))
    append_manifest(translated, entries)
    (translated / SUMMARY_NAME).write_text(json.dumps({"checkpoint_sha256": "stand-in"}))
    return root, translated


def tiny_reid_config(root: Path, translated: Path | None, out: Path, **train) -> dict:
    return {"data": {"name": "synthetic", "root": str(root)},
            "translated": str(translated) if translated else None,
            "model": {"arch": "tiny", "height": 32, "width": 16},
            "cluster": {"k1": 6, "k2": 2, "eps": 0.6, "min_samples": 2},
            "train": {"strategy": "joint", "epochs": 2, "iterations": 3, "num_identities": 2, "num_instances": 2,
                      "hard_dynamic_from": 1, **train},
            "eval": {"every": 2, "trials": 2, "batch_size": 16},
            "runtime": {"device": "cpu", "workers": 0, "seed": 3},
            "output_dir": str(out)}


def build(data: dict, path: Path) -> ReIDConfig:
    path.write_text(yaml.safe_dump(data))
    return load_config(ReIDConfig, path)


def test_two_epoch_joint_run_writes_checkpoint_metrics_and_evaluation(data, tmp_path):
    root, translated = data
    out = tmp_path / "run"
    checkpoint = train_reid(build(tiny_reid_config(root, translated, out), tmp_path / "c.yaml"))
    assert checkpoint == out / "checkpoints" / "last.pt"
    saved = load_checkpoint(checkpoint, kind="reid")
    assert saved["step"] == 2 and saved["config"]["model"]["arch"] == "tiny"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    for key in ("loss_cluster", "loss_view", "loss_cross_view"):
        assert np.isfinite(lines[0][key])
    assert {"ari", "nmi", "pairwise_f", "mixed_share", "num_clusters"} <= set(lines[0]["cluster"])
    assert "eval" not in lines[0] and set(lines[1]["eval"]) == {"all-single", "all-multi", "indoor-single", "indoor-multi"}
    assert 0 < lines[1]["eval"]["all-single"]["R20"] <= 1
    assert (out / "eval" / "epoch_002.json").exists() and (out / "config.yaml").exists()
    # the checkpoint is a `vireid evaluate` checkpoint
    assert vireid_main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--root", str(root),
                        "--trials", "1", "--workers", "0", "--settings", "all-single", "--out", str(tmp_path / "e.json")]) == 0


def test_resume_reaches_the_uninterrupted_weights(data, tmp_path):
    root, translated = data
    straight = train_reid(build(tiny_reid_config(root, translated, tmp_path / "straight"), tmp_path / "a.yaml"))
    train_reid(build(tiny_reid_config(root, translated, tmp_path / "split", max_epochs=1), tmp_path / "b.yaml"))
    resumed = train_reid(build(tiny_reid_config(root, translated, tmp_path / "split"), tmp_path / "c.yaml"))
    a, b = load_checkpoint(straight)["state"], load_checkpoint(resumed)["state"]
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, different[:3]
    assert json.loads(b["history"])[1]["loss_cluster"] == json.loads(a["history"])[1]["loss_cluster"]


@pytest.mark.parametrize("strategy", ["none", "per_modality_hungarian"])
def test_baselines_run_without_translated_views(data, tmp_path, strategy):
    root, _ = data
    config = build(tiny_reid_config(root, None, tmp_path / strategy, strategy=strategy, epochs=1), tmp_path / "c.yaml")
    train_reid(config)
    line = json.loads((tmp_path / strategy / "metrics.jsonl").read_text())
    assert "loss_view" not in line and np.isfinite(line["loss_cluster"])
    if strategy == "none":
        assert line["cluster"]["mixed_clusters"] == 0  # two separate label spaces


def test_joint_without_translated_views_is_a_clear_error(data, tmp_path, capsys):
    root, _ = data
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_reid_config(root, None, tmp_path / "run")))
    assert vireid_main(["train", str(tmp_path / "c.yaml")]) == 2
    assert "joint needs the translated views" in capsys.readouterr().err
    assert vireid_main(["train", str(tmp_path / "c.yaml"), "train.strategy=mixed"]) == 2
    assert "train.strategy" in capsys.readouterr().err


def test_batches_share_identities_only_with_enough_mixed_clusters():
    is_ir = np.array([False, False, True, True, False, True])
    mixed = PseudoLabels(np.array([0, 1, 0, 1, 2, 3]), shared=True)
    assert same_identities_in_both_halves(mixed, is_ir, num_identities=2)
    assert not same_identities_in_both_halves(mixed, is_ir, num_identities=3)  # only 2 clusters hold both
    assert not same_identities_in_both_halves(PseudoLabels(mixed.labels, shared=False, num_vis_clusters=3), is_ir, 1)


def test_batch_augmentation_on_the_training_device(data, tmp_path, monkeypatch):
    """The CUDA path (random augmentation on the whole batch, workers only resize) forced on the CPU."""
    import reid.train

    root, translated = data
    calls = []
    original = reid.train.gpu_augment

    def counted(images, **kwargs):
        calls.append((images.shape, kwargs["is_ir"].clone(), kwargs["channel_augment"]))
        return original(images, **kwargs)

    monkeypatch.setattr(reid.train, "gpu_augment", counted)
    data_config = tiny_reid_config(root, translated, tmp_path / "run", epochs=1)
    data_config["augment"] = {"on_device": True, "channel_augment": True}
    train_reid(build(data_config, tmp_path / "c.yaml"))
    assert len(calls) == 2 * 3  # images and views, 3 iterations
    shape, is_ir, channel = calls[0]
    assert shape[1:] == (3, 32, 16) and channel and is_ir.any() and (~is_ir).any()
    assert torch.equal(calls[1][1], ~calls[0][1])  # the views go through the other modality's augmentation
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert np.isfinite(line["loss_cluster"])


def test_the_upper_bound_trains_on_the_translated_views_as_joint_does(data, tmp_path):
    """oracle with `translated`: true ids, and the views in its batches with the view losses; with both view
    weights at 0 (or no `translated`) the views are not loaded at all."""
    root, translated = data
    lines = {}
    for name, path, weights in (("views", translated, {}), ("labels_only", None, {}),
                                ("weights_off", translated, {"view_weight": 0.0, "cross_view_weight": 0.0})):
        config = tiny_reid_config(root, path, tmp_path / name, strategy="oracle", epochs=1, **weights)
        train_reid(build(config, tmp_path / f"{name}.yaml"))
        lines[name] = json.loads((tmp_path / name / "metrics.jsonl").read_text())
    assert np.isfinite(lines["views"]["loss_view"]) and np.isfinite(lines["views"]["loss_cross_view"])
    assert lines["views"]["cluster"]["ari"] == 1.0  # the true ids
    for name in ("labels_only", "weights_off"):
        assert "loss_view" not in lines[name] and "loss_cross_view" not in lines[name]
    assert lines["weights_off"]["loss_cluster"] == lines["labels_only"]["loss_cluster"]  # same batches, same run


def test_preloaded_images_train_a_run_of_their_own(data, tmp_path, monkeypatch):
    """train.preload_images: after the preload no training or clustering step reads an image file (the
    evaluation, which reads the test images, is left out here)."""
    import reid.data.training_images
    import reid.features
    import reid.train

    root, translated = data
    config = build(tiny_reid_config(root, translated, tmp_path / "run", epochs=2, preload_images=True),
                   tmp_path / "c.yaml")
    reads = []
    for module in (reid.data.training_images, reid.features):
        monkeypatch.setattr(module, "read_image", lambda path, *args, _read=module.read_image:
                            reads.append(path) or _read(path, *args))
    monkeypatch.setattr(reid.train._Run, "_evaluate", lambda self, epoch: None)
    train_reid(config)
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(line["loss_cluster"]) and np.isfinite(line["loss_view"])
    assert reads == [], f"{len(reads)} images read from disk, e.g. {reads[:2]}"
