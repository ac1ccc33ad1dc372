"""A labelled start for a backbone: `pretrain_backbone(config)`, what `vireid pretrain CONFIG` runs.

The references start from ImageNet weights: visible images of other classes, never infrared, never their own
identities. This trains the same kind of start for any `reid.models` architecture: identity classification on the
*visible training images* of a dataset that is not the benchmark's (for the embedded benchmark, a population the
synthetic generator renders with another seed), and writes the stem and trunk as a backbone file that
`model.pretrained=<file>` loads into both stems and the trunk (`reid.models.weights.load_backbone`). Infrared images
and test images are never read (the test ids give a held-out visible -> visible retrieval check at the end).

Every step's batch and augmentation are drawn from a generator seeded by (seed, step), so a run resumed from its
checkpoint (every `train.checkpoint_every` steps) reaches the weights of an uninterrupted one; only the same run
resumes (`reid.resume`).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, load_module_state, read_weights_only, require_state, save_checkpoint
from .config import config_to_dict, save_config
from .data import NoIdentitiesError, Record, VIDataset, open_dataset
from .data.preload import PreloadedImages
from .data.synthetic.writer import MARKER_NAME
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, gpu_augment
from .evaluation import evaluate_ranking
from .features import extract_features
from .files import check_output_folder, write_text_atomically
from .models import build_model_from_config, read_backbone, resolve_weights, save_backbone
from .models.weights import BACKBONE_KIND
from .pretrain_config import PretrainConfig
from .resume import changed_settings, check_resume, set_aside
from .runtime import make_generator, progress, resolve_device, seed_everything

logger = logging.getLogger(__name__)
CHECKPOINT_KIND = "pretrain"  # the run's own checkpoint (model, classifier, optimiser: what resuming needs)
BACKBONE_FILE = "backbone.pt"  # the start: OUTPUT_DIR/backbone.pt
RUN_FILES = ("checkpoints", "metrics.jsonl", "config.yaml", BACKBONE_FILE)  # what fresh moves aside
# settings a resumed run may change: none of them changes the weights
RESUME_SAFE = frozenset({"runtime.log_level", "runtime.tensorboard", "runtime.workers", "train.log_every",
                         "train.checkpoint_every", "output_dir"})
STEP_SEED = 1_000_003  # a step's generator: seed * STEP_SEED + step


def visible_training_images(dataset: VIDataset) -> list[Record]:
    """The visible images of the training split, the only images pretraining reads; NoIdentitiesError for a dataset
    without identities (nothing to classify), ValueError when it has no visible training image."""
    if not dataset.has_identities:
        raise NoIdentitiesError(f"{dataset.name or type(dataset).__name__} at {dataset.root} has no identities: "
                                "vireid pretrain classifies identities; use a labelled dataset")
    records = [record for record in dataset.train if record.modality == "vis"]
    if not records:
        raise ValueError(f"{dataset.root}: no visible training image to pretrain on")
    return records


def population_of(dataset: VIDataset) -> dict:
    """What the start is trained on, for its file: the dataset's loader, and for a synthetic tree the generator
    parameters its marker records (seed, version, ...), by which `check_disjoint_start` tells populations apart. No
    path: the same command writes the same file in any checkout."""
    marker = Path(dataset.root) / MARKER_NAME
    population = {"dataset": type(dataset).__name__}
    if marker.is_file():
        population["synthetic"] = {k: v for k, v in json.loads(marker.read_text()).items() if k != "complete"}
    return population


def check_disjoint_start(pretrained: str | None, arch: str, dataset: VIDataset) -> None:
    """Refuse a start (`model.pretrained`) that a `vireid pretrain` run trained on this very synthetic population
    (the same generator seed): it would have seen the benchmark's identities. ImageNet files and other datasets
    pass."""
    if pretrained is None or str(pretrained) == "imagenet":
        return
    marker = Path(dataset.root) / MARKER_NAME
    if not marker.is_file():
        return
    path = resolve_weights(arch, pretrained)
    payload = read_weights_only(path)
    if not isinstance(payload, dict) or payload.get("kind") != BACKBONE_KIND:
        return
    start = (payload["state"].get("report") or {}).get("population", {}).get("synthetic")
    benchmark = json.loads(marker.read_text())
    if start is not None and start.get("seed") == benchmark.get("seed"):
        raise ValueError(f"model.pretrained={pretrained} ({path}) was trained on the synthetic population of seed "
                         f"{start.get('seed')}, the population of {dataset.root}: it has seen this benchmark's "
                         "identities. Use a start pretrained on another seed, or another data.seed")


def warmup_cosine(steps: int, warmup_steps: int):
    """The learning-rate factor of step s: linear from 1/(warmup+1) up to 1 over `warmup_steps`, then a cosine
    decay to 0 at `steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress_fraction = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_fraction)))
    return factor


def pretrain_backbone(config: PretrainConfig, *, fresh: bool = False) -> Path:
    """Train the start; returns its backbone file (OUTPUT_DIR/backbone.pt).

    Resumes the run folder's checkpoint when `config` is the same run (else ResumeError); fresh: first move the old
    run's files (RUN_FILES) into OUTPUT_DIR/previous/<n>/.
    """
    check_output_folder(config.output_dir, what="output_dir")
    return _Pretraining(config).run(fresh)


class _Pretraining:
    def __init__(self, config: PretrainConfig) -> None:
        self.config, self.out = config, Path(config.output_dir)
        self.device = resolve_device(config.runtime.device)
        seed_everything(config.runtime.seed)
        self.dataset = open_dataset(config.data)
        self.records = visible_training_images(self.dataset)
        identities = sorted({record.pid for record in self.records})
        index = {pid: row for row, pid in enumerate(identities)}
        self.labels = torch.tensor([index[record.pid] for record in self.records])
        self.images = PreloadedImages([record.path for record in self.records], config.model.height,
                                      config.model.width)
        self.model = build_model_from_config(config.model).to(self.device)
        self.classifier = nn.Linear(self.model.feature_dim, len(identities), bias=False).to(self.device)
        nn.init.normal_(self.classifier.weight, std=0.001)
        parameters = [*self.model.parameters(), *self.classifier.parameters()]
        train = config.train
        self.optimizer = torch.optim.Adam(parameters, lr=train.lr, weight_decay=train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           warmup_cosine(train.steps, train.warmup_steps))
        self.step = 0
        self.checkpoint_path = self.out / "checkpoints" / "last.pt"
        logger.info("pretraining %s on %d visible images of %d identities (%s), %d steps", config.model.arch,
                    len(self.records), len(identities), self.dataset.root, train.steps)

    def run(self, fresh: bool) -> Path:
        if fresh:
            moved = set_aside(self.out, RUN_FILES)
            if moved is not None:
                logger.info("starting afresh: the previous run's files are in %s", moved)
        if self.checkpoint_path.exists():
            self._restore()
        save_config(self.config, self.out)
        train = self.config.train
        window: list[tuple[float, float]] = []  # (loss, accuracy) of the steps since the last metrics line
        for step in progress(range(self.step, train.steps), desc="pretrain", total=train.steps - self.step,
                             unit="step"):
            window.append(self._train_step(step))
            self.step = step + 1
            if self.step % train.log_every == 0 or self.step == train.steps:
                losses, accuracies = zip(*window)
                self._log({"step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                           "loss": float(np.mean(losses)), "accuracy": float(np.mean(accuracies))})
                window = []
            if self.step % train.checkpoint_every == 0 or self.step == train.steps:
                self._save()
        report = {"population": population_of(self.dataset), "images": len(self.records),
                  "identities": int(self.classifier.weight.shape[0]), "modalities": ["vis"], "steps": train.steps,
                  **heldout_retrieval(self.model, self.dataset, self.config, self.device)}
        recipe = {key: value for key, value in config_to_dict(self.config).items() if key != "output_dir"}
        path = save_backbone(self.out / BACKBONE_FILE, self.model, self.config.model.arch, config=recipe,
                             report=report, step=self.step)
        logger.info("backbone written to %s (held-out visible R1 %.1f%%, mAP %.1f%%)", path,
                    100 * report["heldout_R1"], 100 * report["heldout_mAP"])
        return path

    def _train_step(self, step: int) -> tuple[float, float]:
        """One optimiser step on a batch drawn (rows and augmentation) from the generator of (seed, step)."""
        config = self.config
        generator = make_generator(config.runtime.seed * STEP_SEED + step)
        rows = torch.randint(len(self.records), (config.train.batch_size,), generator=generator)
        images = gpu_augment(self.images.batch(rows), pad=config.augment.pad, flip=config.augment.flip,
                             erasing=config.augment.erasing, color_jitter=config.augment.color_jitter,
                             generator=generator)
        images = random_grey(images, config.augment.grayscale, generator).to(self.device)
        labels = self.labels[rows].to(self.device)
        self.model.train()
        features = self.model(images, torch.zeros(len(rows), dtype=torch.bool, device=self.device))["features"]
        logits = self.classifier(features)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.train.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item()), float((logits.argmax(1) == labels).float().mean().item())

    def _log(self, record: dict) -> None:
        with open(self.out / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _save(self) -> None:
        state = {"model": self.model.state_dict(), "classifier": self.classifier.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        save_checkpoint(self.checkpoint_path, kind=CHECKPOINT_KIND, state=state, config=config_to_dict(self.config),
                        step=self.step)

    def _restore(self) -> None:
        path = self.checkpoint_path
        checkpoint = load_checkpoint(path, kind=CHECKPOINT_KIND)
        changes = changed_settings(checkpoint["config"], config_to_dict(self.config), safe=RESUME_SAFE)
        check_resume(changes, checkpoint=path, run_dir=self.out, run_files=RUN_FILES, safe=RESUME_SAFE)
        load_module_state(self.model, require_state(checkpoint, "model", path), name="model", path=path)
        load_module_state(self.classifier, require_state(checkpoint, "classifier", path), name="classifier",
                          path=path)
        self.optimizer.load_state_dict(require_state(checkpoint, "optimizer", path))
        self.scheduler.load_state_dict(require_state(checkpoint, "scheduler", path))
        self.step = int(checkpoint["step"])
        # metrics.jsonl as the checkpoint has it: the lines of the steps after it are trained again
        lines = []
        if (self.out / "metrics.jsonl").exists():
            lines = [line for line in (self.out / "metrics.jsonl").read_text().splitlines()
                     if line.strip() and json.loads(line)["step"] <= self.step]
        write_text_atomically(self.out / "metrics.jsonl", "".join(line + "\n" for line in lines))
        logger.info("resumed from %s after step %d", path, self.step)


def random_grey(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """images [B, 3, H, W] ImageNet-normalised -> the same, each image with `probability` replaced by its luminance
    (0.299 R + 0.587 G + 0.114 B of the pixel values, torchvision's `rgb_to_grayscale`) in all three channels."""
    if probability <= 0:
        return images
    chosen = torch.rand(len(images), generator=generator) < probability
    mean, std = (torch.tensor(values).view(1, 3, 1, 1) for values in (IMAGENET_MEAN, IMAGENET_STD))
    pixels = images * std + mean
    grey = (pixels * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.where(chosen.view(-1, 1, 1, 1), (grey - mean) / std, images)


def heldout_retrieval(model: nn.Module, dataset: VIDataset, config: PretrainConfig, device: torch.device) -> dict:
    """The start's visible -> visible retrieval on the test ids of its own population (never trained on): queries
    from the first half of the visible test cameras, the gallery from the other half; R1 and mAP (fractions), or
    {} when the test split has fewer than two visible cameras."""
    records = [record for record in dataset.test_images() if record.modality == "vis"]
    cameras = sorted({record.camid for record in records})
    if len(cameras) < 2:
        return {}
    query_cameras = set(cameras[: len(cameras) // 2])
    query = [record for record in records if record.camid in query_cameras]
    gallery = [record for record in records if record.camid not in query_cameras]
    features = extract_features(model, query + gallery, device, batch_size=256, height=config.model.height,
                                width=config.model.width, num_workers=config.runtime.workers, progress=False)
    distmat = -(features[: len(query)] @ features[len(query):].T).numpy()
    arrays = [np.array([getattr(record, key) for record in part]) for key in ("pid", "camid")
              for part in (query, gallery)]
    result = evaluate_ranking(distmat, arrays[0], arrays[1], arrays[2], arrays[3], protocol="regdb")
    return {"heldout_ids": len({record.pid for record in records}), "heldout_R1": float(result.cmc[0]),
            "heldout_mAP": float(result.mAP)}


def describe_backbone(path: str | Path) -> dict:
    """What a backbone file records: its architecture, feature size, steps and report (population, images,
    identities, modalities, held-out R1 / mAP)."""
    checkpoint = read_backbone(path)
    state = checkpoint["state"]
    return {"arch": state["arch"], "feature_dim": state["feature_dim"], "steps": checkpoint["step"],
            **state.get("report", {})}
