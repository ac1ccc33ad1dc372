"""Learning that shows, in seconds: a supervised run on tiny data whose loss falls and whose cross-modal
retrieval on its own images beats chance by a wide margin (it fails when the optimiser step or the memory
update is removed), and resumes that train only what is missing (counted, so a restart from scratch fails)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import reid.train as reid_train
from reid.config import load_config
from reid.data import load_dataset, make_synthetic_sysu
from reid.evaluation import evaluate_ranking
from reid.features import extract_features
from reid.models import load_model_checkpoint
from reid.train import train_reid
from reid.train_config import ReIDConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """12 identities, 2-4 images per camera, 64x32: big enough for identity to be learnable in seconds."""
    root = tmp_path_factory.mktemp("learning") / "synthetic"
    make_synthetic_sysu(root, num_ids=12, seed=1, images_per_camera=3, height=64, width=32, test_fraction=0.2,
                        val_fraction=0.0)
    return root


def supervised_config(root, out, tmp_path, epochs: int = 2, **train) -> ReIDConfig:
    """The upper bound's recipe (the oracle method: true identities as labels, one stage) with the compact network,
    a few hundred images/s."""
    stages = {"intra": {"epochs": 0}, "cross": {"epochs": epochs, "lr": 2e-3, "step_size": 10}}
    data = {"data": {"name": "synthetic", "root": str(root)}, "method": {"name": "oracle"},
            "model": {"arch": "small", "height": 32, "width": 16},
            "augment": {"pad": 1, "erasing": 0.0},
            "train": {"iterations": 50, "num_identities": 4, "vis_identities": 2, "num_instances": 4,
                      "momentum": 0.9, "preload_images": True, "stages": stages, **train},
            "eval": {"every": 100, "trials": 1, "settings": ["all-single"], "batch_size": 64},
            "runtime": {"device": "cpu", "workers": 0, "seed": 0, "log_level": "WARNING"},
            "output_dir": str(out)}
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(ReIDConfig, path)


def own_cross_modal_map(checkpoint, root) -> tuple[float, float]:
    """(mAP, chance mAP) of infrared -> visible retrieval over the run's own training images."""
    model, model_config = load_model_checkpoint(checkpoint)
    records = load_dataset("synthetic", root).train
    features = extract_features(model, records, torch.device("cpu"), height=model_config.height,
                                width=model_config.width, num_workers=0, progress=False)
    is_ir = np.array([r.modality == "ir" for r in records])
    pids = np.array([r.pid for r in records])
    cams = np.array([r.camid for r in records])
    distance = -(features[is_ir] @ features[~is_ir].T).numpy()
    trained = evaluate_ranking(distance, pids[is_ir], pids[~is_ir], cams[is_ir], cams[~is_ir], protocol="regdb").mAP
    random = np.random.default_rng(0).standard_normal(distance.shape)
    chance = evaluate_ranking(random, pids[is_ir], pids[~is_ir], cams[is_ir], cams[~is_ir], protocol="regdb").mAP
    return float(trained), float(chance)


def identity_centroids(checkpoint, root) -> torch.Tensor:
    """[C, D] L2-normalised mean feature of each training identity (in label order: sorted pids)."""
    model, model_config = load_model_checkpoint(checkpoint)
    records = load_dataset("synthetic", root).train
    features = extract_features(model, records, torch.device("cpu"), height=model_config.height,
                                width=model_config.width, num_workers=0, flip=False, progress=False)
    labels = torch.from_numpy(np.unique([r.pid for r in records], return_inverse=True)[1])
    sums = torch.zeros(int(labels.max()) + 1, features.shape[1]).index_add_(0, labels, features)
    return torch.nn.functional.normalize(sums, dim=1)


def agreement(prototypes: torch.Tensor, centroids: torch.Tensor) -> float:
    """Mean cosine similarity of each prototype [C, D] to its identity's centroid [C, D]."""
    return float((torch.nn.functional.normalize(prototypes, dim=1) * centroids).sum(dim=1).mean())


def epoch_losses(out) -> list[float]:
    return [json.loads(line)["loss_cluster"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_supervised_run_learns_cross_modal_retrieval(world, tmp_path, monkeypatch):
    built, plan = [], reid_train._Run._plan  # (memory, its prototypes when built) of every epoch

    def recording(run, *args, **kwargs):
        epoch_plan = plan(run, *args, **kwargs)
        memory = epoch_plan.passes[0].objective.memory
        built.append((memory, memory.prototypes.clone()))
        return epoch_plan

    monkeypatch.setattr(reid_train._Run, "_plan", recording)
    out = tmp_path / "run"
    checkpoint = train_reid(supervised_config(world, out, tmp_path))
    losses = epoch_losses(out)
    trained, chance = own_cross_modal_map(checkpoint, world)
    assert losses[-1] < 0.8 * losses[0], f"the loss did not fall: {losses}"
    assert trained > 2.0 * chance and trained > chance + 0.2, f"mAP {trained:.3f} against chance {chance:.3f}"
    # the memory follows the features: the last epoch's updates moved its prototypes (by 0.9 on average here), and
    # not away from the identities' feature centroids under the trained model
    memory, at_build = built[-1]
    centroids = identity_centroids(checkpoint, world)
    before, after = agreement(at_build, centroids), agreement(memory.prototypes, centroids)
    moved = float((memory.prototypes - at_build).norm(dim=1).mean())
    assert moved > 0.1 and after > before - 0.05, f"prototypes moved {moved:.3f}; agreement {before:.3f} -> {after:.3f}"


class Counter:
    """Counts the optimiser steps `_Run._step` takes (wraps the real method)."""

    def __init__(self, monkeypatch) -> None:
        self.steps = 0
        original = reid_train._Run._step

        def counted(run, *args, **kwargs):
            self.steps += 1
            return original(run, *args, **kwargs)

        monkeypatch.setattr(reid_train._Run, "_step", counted)


def test_a_rerun_trains_only_the_missing_epochs(world, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    out = tmp_path / "run"
    train_reid(supervised_config(world, out, tmp_path, epochs=2, iterations=2, max_epochs=1))  # interrupted
    assert counter.steps == 2
    train_reid(supervised_config(world, out, tmp_path, epochs=2, iterations=2))  # resumes: one epoch left
    assert counter.steps == 4
    train_reid(supervised_config(world, out, tmp_path, epochs=2, iterations=2))  # finished: nothing to train
    assert counter.steps == 4
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
