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
from reid.train import train_reid
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


def tiny_reid_config(root: Path, translated: Path | None, out: Path, *, intra: dict | None = None,
                     cross: dict | None = None, method: str = "joint", options: dict | None = None, **train) -> dict:
    """Two stages of one epoch each, `intra` and `cross`, updated by the given dicts, for `method` (default joint:
    per-modality clusters, then mixed-modal clusters with both view losses) with `options`."""
    stages = {"intra": {"epochs": 1, "lr": 1e-3, **(intra or {})}, "cross": {"epochs": 1, "lr": 1e-3, **(cross or {})}}
    return {"data": {"name": "synthetic", "root": str(root)},
            "translated": str(translated) if translated else None,
            "method": {"name": method, "options": dict(TINY_OPTIONS.get(method, {}), **(options or {}))},
            "model": {"arch": "tiny", "height": 32, "width": 16},
            "cluster": {"k1": 6, "k2": 2, "eps": 0.6, "min_samples": 2},
            "train": {"iterations": 3, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                      "stages": stages, **train},
            "eval": {"every": 2, "trials": 2, "batch_size": 16},
            "runtime": {"device": "cpu", "workers": 0, "seed": 3},
            "output_dir": str(out)}


# PCLHD's "all" clustering and instance memory scaled to 8 identities of ~6 images
TINY_OPTIONS = {"pclhd": {"mixed_k1": 6, "mixed_k2": 3, "num_instances": 2}}
METHODS = ("cluster_contrast", "adca", "pgm", "pclhd", "joint", "oracle")


def build(data: dict, path: Path) -> ReIDConfig:
    path.write_text(yaml.safe_dump(data))
    return load_config(ReIDConfig, path)


def history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_stage_joint_run_writes_checkpoint_metrics_and_evaluation(data, tmp_path):
    root, translated = data
    out = tmp_path / "run"
    checkpoint = train_reid(build(tiny_reid_config(root, translated, out), tmp_path / "c.yaml"))
    assert checkpoint == out / "checkpoints" / "last.pt"
    saved = load_checkpoint(checkpoint, kind="reid")
    assert saved["step"] == 2 and saved["config"]["model"]["arch"] == "tiny"
    assert saved["config"]["method"] == {"name": "joint", "options": {
        "view_weight": 1.0, "cross_view_weight": 1.0, "mixed_k1": None, "mixed_k2": None, "balanced": False}}
    lines = history(out)
    assert [(line["epoch"], line["stage"], line["stage_epoch"]) for line in lines] == [(1, "intra", 1), (2, "cross", 1)]
    assert set(lines[0]) >= {"loss_vis", "loss_ir"} and lines[0]["cluster"]["mixed_clusters"] == 0  # per modality
    for key in ("loss_cluster", "loss_view", "loss_cross_view"):
        assert np.isfinite(lines[1][key])
    assert {"ari", "nmi", "pairwise_f", "mixed_share", "num_clusters"} <= set(lines[0]["cluster"])
    assert "eval" not in lines[0] and set(lines[1]["eval"]) == {"all-single", "all-multi", "indoor-single", "indoor-multi"}
    assert 0 < lines[1]["eval"]["all-single"]["R20"] <= 1
    assert (out / "eval" / "epoch_002.json").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["method"]["options"]["view_weight"] == 1.0  # resolved
    # the checkpoint is a `vireid evaluate` checkpoint
    assert vireid_main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--root", str(root),
                        "--trials", "1", "--workers", "0", "--settings", "all-single", "--out", str(tmp_path / "e.json")]) == 0


# the loss terms of each method's epochs: intra stage, cross stage
TERMS = {"cluster_contrast": ({"vis", "ir"}, {"vis", "ir"}), "adca": ({"vis", "ir"}, {"vis", "ir"}),
         "pgm": ({"vis", "ir"}, {"vis", "ir", "cross"}), "pclhd": ({"vis", "ir"}, {"vis", "ir", "cross", "dynamic"}),
         "joint": ({"vis", "ir"}, {"cluster", "view", "cross_view"}),
         "oracle": ({"cluster"}, {"cluster", "view", "cross_view"})}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_its_two_stages_end_to_end(data, tmp_path, method):
    """One short run per method: each stage trains the method's loss terms (finite), records its notes, evaluates
    and writes a checkpoint `vireid evaluate` reads."""
    root, translated = data
    out = tmp_path / method
    checkpoint = train_reid(build(tiny_reid_config(root, translated, out, method=method), tmp_path / "c.yaml"))
    lines = history(out)
    for line, terms in zip(lines, TERMS[method]):
        assert {key[5:] for key in line if key.startswith("loss_")} == terms, line
        assert all(np.isfinite(line[f"loss_{term}"]) for term in terms)
    notes = {"adca": {"cma_pairs"}, "pgm": {"matched"}, "pclhd": {"bimodal_clusters", "matched"}}.get(method, set())
    assert set(lines[1].get("method", {})) == notes
    assert 0 < lines[1]["eval"]["all-single"]["mAP"] <= 1
    state = load_checkpoint(checkpoint, kind="reid")["state"]
    assert ("student" in state) == (method == "pclhd")  # PCLHD delivers its EMA teacher
    assert vireid_main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--root", str(root),
                        "--trials", "1", "--workers", "0", "--settings", "all-single", "--out", str(tmp_path / "e.json")]) == 0


def test_each_stage_starts_its_own_optimiser_and_schedule(data, tmp_path):
    """restart_optimizer: the cross stage starts from its own learning rate with fresh Adam moments; without it
    the moments carry over (Adam's step count goes on) and only the learning rate is the stage's."""
    root, translated = data
    steps = {}
    for restart in (True, False):
        out = tmp_path / f"restart_{restart}"
        config = tiny_reid_config(root, translated, out, intra={"lr": 1e-3, "step_size": 1, "gamma": 0.1},
                                  cross={"lr": 2e-3, "step_size": 5, "restart_optimizer": restart})
        checkpoint = train_reid(build(config, tmp_path / f"{restart}.yaml"))
        assert [line["lr"] for line in history(out)] == pytest.approx([1e-4, 2e-3])
        state = load_checkpoint(checkpoint)["state"]["optimizer"]["state"]
        steps[restart] = int(next(iter(state.values()))["step"])
    assert steps == {True: 3, False: 6}  # 3 iterations an epoch


@pytest.mark.parametrize("method", ["joint", "pclhd"])
@pytest.mark.parametrize("stop", [1, 2, 3], ids=["inside_stage_1", "at_the_boundary", "inside_stage_2"])
def test_resume_reaches_the_uninterrupted_weights(data, tmp_path, stop, method):
    """Two stages of two epochs: a run stopped after `stop` epochs and resumed ends with the weights (PCLHD: of
    its student and of its EMA teacher), loss terms and optimiser state of the uninterrupted run."""
    root, translated = data
    stages = {"intra": {"epochs": 2}, "cross": {"epochs": 2}, "method": method}
    straight = train_reid(build(tiny_reid_config(root, translated, tmp_path / "straight", **stages), tmp_path / "a.yaml"))
    train_reid(build(tiny_reid_config(root, translated, tmp_path / "split", max_epochs=stop, **stages), tmp_path / "b.yaml"))
    assert len(history(tmp_path / "split")) == stop
    resumed = train_reid(build(tiny_reid_config(root, translated, tmp_path / "split", **stages), tmp_path / "c.yaml"))
    a, b = load_checkpoint(straight)["state"], load_checkpoint(resumed)["state"]
    for weights in ("model", "student") if method == "pclhd" else ("model",):
        different = [k for k in a[weights] if not torch.equal(a[weights][k], b[weights][k])]
        assert not different, (weights, different[:3])
    losses = [{k: v for k, v in line.items() if k.startswith("loss_") or k == "stage"}
              for line in json.loads(a["history"])]
    assert losses == [{k: v for k, v in line.items() if k.startswith("loss_") or k == "stage"}
                      for line in json.loads(b["history"])]
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]


def test_resume_inside_a_stage_continues_its_learning_rate_schedule(data, tmp_path):
    """A stage of 3 epochs with step size 2: the rate drops after its second epoch (metrics.jsonl logs the rate
    after each epoch's scheduler step). Stopped after the first epoch and resumed, the run must step the restored
    schedule (a fresh one would drop an epoch late)."""
    root, _ = data
    stages = {"intra": {"epochs": 3, "lr": 1e-3, "step_size": 2, "gamma": 0.1}, "cross": {"epochs": 0},
              "method": "cluster_contrast"}
    straight = train_reid(build(tiny_reid_config(root, None, tmp_path / "straight", **stages), tmp_path / "a.yaml"))
    train_reid(build(tiny_reid_config(root, None, tmp_path / "split", max_epochs=1, **stages), tmp_path / "b.yaml"))
    resumed = train_reid(build(tiny_reid_config(root, None, tmp_path / "split", **stages), tmp_path / "c.yaml"))
    for out in ("straight", "split"):
        assert [line["lr"] for line in history(tmp_path / out)] == pytest.approx([1e-3, 1e-4, 1e-4])
    a, b = load_checkpoint(straight)["state"], load_checkpoint(resumed)["state"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["scheduler"] == b["scheduler"]


@pytest.mark.parametrize("method", ["cluster_contrast", "adca", "pgm", "pclhd"])
def test_the_field_s_methods_run_without_translated_views(data, tmp_path, method):
    root, _ = data
    train_reid(build(tiny_reid_config(root, None, tmp_path / method, method=method), tmp_path / "c.yaml"))
    line = history(tmp_path / method)[-1]
    assert "loss_view" not in line and np.isfinite(line["loss_vis"])


def test_joint_without_translated_views_is_a_clear_error(data, tmp_path, capsys):
    root, _ = data
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_reid_config(root, None, tmp_path / "run")))
    assert vireid_main(["train", str(tmp_path / "c.yaml")]) == 2
    assert "method joint clusters the translated views in stage cross" in capsys.readouterr().err
    assert vireid_main(["train", str(tmp_path / "c.yaml"), "method.name=pgn"]) == 2
    assert "method.name: expected one of" in capsys.readouterr().err
    assert vireid_main(["train", str(tmp_path / "c.yaml"), "method.name=pgm", "method.options.cross_weigth=1"]) == 2
    assert "did you mean 'method.options.cross_weight'" in capsys.readouterr().err


def test_a_stage_may_set_its_own_batch(data, tmp_path, monkeypatch):
    """train.stages.<name>.num_identities / vis_identities (PCLHD's RegDB script halves the visible batch in stage 1
    only) replace the train section's for that stage."""
    root, translated = data
    seen = record_forward_inputs(monkeypatch)
    config = tiny_reid_config(root, None, tmp_path / "run", method="cluster_contrast", num_identities=2,
                              vis_identities=2, intra={"vis_identities": 1, "num_identities": 3})
    train_reid(build(config, tmp_path / "c.yaml"))
    assert seen == [(1 * 2 * 2, 3 * 2)] * 3 + [(2 * 2 * 2, 2 * 2)] * 3  # K = 2, visible images twice (CAJ)


def record_forward_inputs(monkeypatch) -> list[tuple[int, int]]:
    """Patch the tiny network's forward to record (visible-stem rows, infrared-stem rows) of every call."""
    from reid.models.two_stream import TwoStreamNet

    seen = []
    original = TwoStreamNet.forward

    def forward(self, images, is_ir):
        if self.training:
            seen.append((int((~is_ir).sum()), int(is_ir.sum())))
        return original(self, images, is_ir)

    monkeypatch.setattr(TwoStreamNet, "forward", forward)
    return seen


@pytest.mark.parametrize("caj", [True, False])
def test_batches_hold_independent_halves_and_caj_copies(data, tmp_path, monkeypatch, caj):
    """A step trains vis_identities x K visible images, under CAJ twice (colour and channel-exchanged copy),
    and num_identities x K infrared images; in the cross stage each with its translated view."""
    root, translated = data
    seen = record_forward_inputs(monkeypatch)
    config = tiny_reid_config(root, translated, tmp_path / "run", num_identities=3, vis_identities=2)
    config["augment"] = {"caj": caj}
    train_reid(build(config, tmp_path / "c.yaml"))
    vis, ir = 2 * 2 * (2 if caj else 1), 3 * 2  # K = 2
    assert seen == [(vis, ir)] * 3 + [(vis + ir, ir + 2 * 2)] * 3  # views: of the infrared (visible stem) and
    # of the colour visible images (infrared stem)


def test_batch_augmentation_on_the_training_device(data, tmp_path, monkeypatch):
    """The CUDA path (random augmentation on the whole batch, workers only resize) forced on the CPU: the
    colour copies get no channel op, the exchanged copies ChannelExchange, infrared (and the views of visible
    images) adaptive grey, the views of infrared images the colour copies' augmentation."""
    import reid.train

    root, translated = data
    calls = []
    original = reid.train.gpu_augment

    def counted(images, **kwargs):
        calls.append((images.shape[0], kwargs["channel_op"], kwargs["color_jitter"]))
        return original(images, **kwargs)

    monkeypatch.setattr(reid.train, "gpu_augment", counted)
    config = tiny_reid_config(root, translated, tmp_path / "run")
    config["augment"] = {"on_device": True, "caj": True, "color_jitter": 0.5}
    train_reid(build(config, tmp_path / "c.yaml"))
    intra = [(2, None, 0.0), (2, "exchange", 0.5), (4, "adaptive_grey", 0.0)]
    assert calls == intra * 3 + (intra + [(2, "adaptive_grey", 0.0), (4, None, 0.0)]) * 3
    assert np.isfinite(history(tmp_path / "run")[-1]["loss_cluster"])


def test_the_upper_bound_trains_on_the_translated_views_as_joint_does(data, tmp_path):
    """oracle with `translated`: true ids, and in its cross stage the views in its batches with the view losses, as
    joint; with both view weights at 0 (or no `translated`) the views are not loaded at all."""
    root, translated = data
    lines = {}
    for name, path, weights in (("views", translated, {}), ("labels_only", None, {}),
                                ("weights_off", translated, {"view_weight": 0.0, "cross_view_weight": 0.0})):
        config = tiny_reid_config(root, path, tmp_path / name, method="oracle", options=weights, intra={"epochs": 0})
        train_reid(build(config, tmp_path / f"{name}.yaml"))
        lines[name] = history(tmp_path / name)[0]
    assert np.isfinite(lines["views"]["loss_view"]) and np.isfinite(lines["views"]["loss_cross_view"])
    assert lines["views"]["cluster"]["ari"] == 1.0  # the true ids
    for name in ("labels_only", "weights_off"):
        assert "loss_view" not in lines[name] and "loss_cross_view" not in lines[name]
    assert lines["weights_off"]["loss_cluster"] == lines["labels_only"]["loss_cluster"]  # same batches, same run


def test_clustering_features_are_flip_averaged_and_follow_runtime_bf16(data, tmp_path, monkeypatch):
    import reid.train

    root, translated = data
    calls = []
    original = reid.train.extract_features
    monkeypatch.setattr(reid.train, "extract_features",
                        lambda *args, **kwargs: calls.append(kwargs) or original(*args, **kwargs))
    monkeypatch.setattr(reid.train._Run, "_evaluate", lambda self, epoch: None)
    config = tiny_reid_config(root, translated, tmp_path / "run")
    config["runtime"]["bf16"] = False
    train_reid(build(config, tmp_path / "c.yaml"))
    assert len(calls) == 3  # the images in both stages, the views for the mixed-modal clustering
    assert all(call["flip"] and not call["normalise"] and call["bf16"] is False for call in calls)
    calls.clear()
    config = tiny_reid_config(root, translated, tmp_path / "pclhd", method="pclhd")
    config["runtime"]["bf16"] = False
    train_reid(build(config, tmp_path / "p.yaml"))
    assert len(calls) == 3  # the images in both stages, the images by the EMA teacher in the cross stage
    assert all(call["flip"] and not call["normalise"] and call["bf16"] is False for call in calls)


def test_preloaded_images_train_a_run_of_their_own(data, tmp_path, monkeypatch):
    """train.preload_images: after the preload no training or clustering step reads an image file (the
    evaluation, which reads the test images, is left out here)."""
    import reid.data.training_images
    import reid.features
    import reid.train

    root, translated = data
    config = build(tiny_reid_config(root, translated, tmp_path / "run", preload_images=True), tmp_path / "c.yaml")
    reads = []
    for module in (reid.data.training_images, reid.features):
        monkeypatch.setattr(module, "read_image", lambda path, *args, _read=module.read_image:
                            reads.append(path) or _read(path, *args))
    monkeypatch.setattr(reid.train._Run, "_evaluate", lambda self, epoch: None)
    train_reid(config)
    line = history(tmp_path / "run")[-1]
    assert np.isfinite(line["loss_cluster"]) and np.isfinite(line["loss_view"])
    assert reads == [], f"{len(reads)} images read from disk, e.g. {reads[:2]}"
