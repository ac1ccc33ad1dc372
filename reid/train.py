"""The unsupervised ReID loop: `train_reid(config)`.

Per epoch, as plain function calls: extract features (of the images and of their translated views)
-> pseudo-labels by strategy (mixed-modal clustering, per-modality + Hungarian, or per-modality only)
-> cluster memories -> train `iterations` steps -> cluster quality against the true ids -> evaluate
every E epochs -> checkpoint. A run resumes from its last checkpoint (epoch granularity) to the same
weights as an uninterrupted run. Under torchrun, features are gathered for clustering on rank 0, the
labels broadcast, and rank 0 writes.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, load_module_state, require_state
from .config import config_to_dict, save_config
from .data import Record, TranslatedViews, open_dataset
from .data.preload import PreloadedImages
from .data.samplers import CrossModalitySampler
from .data.training_images import OTHER_MODALITY, TrainingImages
from .data.transforms import build_train_transform, gpu_augment
from .evaluation import cluster_quality, evaluate_protocol
from .features import extract_features
from .losses import cross_view_nce, progressive_prototype_loss
from .memory import ClusterMemory
from .models import build_model_from_config, save_model_checkpoint
from .pseudo_labels import PseudoLabels, compute_pseudo_labels
from .runtime import (DistributedContext, autocast, barrier, capture_rng_state, init_distributed, make_generator,
                      progress, restore_rng_state, seed_everything, seed_worker, shutdown, to_memory_format,
                      use_channels_last)
from .train_config import ReIDConfig

logger = logging.getLogger(__name__)
PROTOTYPES = ("centroid", "hard", "dynamic")
# strategies whose batches carry each image's translated view (with its label) when `translated` is set: the
# oracle takes them too, so that the upper bound trains on the same inputs as the richest strategy
VIEW_STRATEGIES = ("joint", "oracle")


@dataclass
class MemoryGroup:
    """Cluster memories over the rows of one label space: all rows (`modality` None) or one modality's,
    whose labels start at `offset`. memories: prototype kind -> ClusterMemory."""

    memories: dict[str, ClusterMemory]
    modality: str | None = None
    offset: int = 0

    def rows(self, labels: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
        mask = labels >= 0
        if self.modality is not None:
            mask &= is_ir if self.modality == "ir" else ~is_ir
        return mask


@dataclass
class TrainingData:
    """The training images, their translated views (or None) and the true ids (for cluster quality)."""

    records: list[Record]
    view_paths: list[str] | None
    is_ir: np.ndarray
    dataset: object = None

    @property
    def view_records(self) -> list[Record]:
        """The views as records of the other modality (their features come from that modality's stem)."""
        return [Record(path, r.pid, r.camid, OTHER_MODALITY[r.modality]) for r, path in zip(self.records, self.view_paths)]


@dataclass
class RunState:
    epoch: int = 0  # the next epoch to train
    history: list[dict] = field(default_factory=list)


def train_reid(config: ReIDConfig) -> Path:
    """Train a ReID model without labels; returns the final checkpoint (a `vireid evaluate` checkpoint)."""
    context = init_distributed(config.runtime.device)
    try:
        return _Run(config, context).train()
    finally:
        shutdown(context)


class _Run:
    def __init__(self, config: ReIDConfig, context: DistributedContext) -> None:
        self.config, self.context, self.device = config, context, context.device
        self.out = Path(config.output_dir)
        self.checkpoint_path = self.out / "checkpoints" / "last.pt"
        seed_everything(config.runtime.seed)
        self.data = load_training_data(config, context)
        self.channels_last = use_channels_last(self.device, config.runtime.channels_last)
        # random augmentation on whole batches on the device (then the workers only resize and normalise)
        on_device = config.augment.on_device
        self.augment_on_device = self.device.type == "cuda" if on_device is None else on_device
        self.preloaded = preload_training_images(self.data, config) if config.train.preload_images else None
        self.augment_on_device = self.augment_on_device or self.preloaded is not None
        self.model = to_memory_format(build_model_from_config(config.model).to(self.device), self.channels_last)
        train = config.train
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=train.step_size, gamma=train.gamma)
        self.state = RunState()

    def train(self) -> Path:
        if self.checkpoint_path.exists():
            self._restore()
        if self.context.is_main:
            save_config(self.config, self.out)
        trained = self.model if not self.context.enabled else DistributedDataParallel(self.model)
        train = self.config.train
        last_epoch = train.epochs if train.max_epochs is None else min(train.epochs, train.max_epochs)
        for epoch in range(self.state.epoch, last_epoch):
            started = time.perf_counter()
            features, pseudo = self._pseudo_labels()
            groups = build_memories(features, pseudo, self.data.is_ir, train, epoch, self.device,
                                    seed=self.config.runtime.seed)
            losses = self._train_epoch(trained, pseudo, groups, epoch)
            self.scheduler.step()
            record = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], **losses,
                      "cluster": self._cluster_report(pseudo), "seconds": round(time.perf_counter() - started, 1)}
            if (epoch + 1) % self.config.eval.every == 0 or epoch + 1 == last_epoch:
                record["eval"] = self._evaluate(epoch + 1)
            self.state = RunState(epoch + 1, self.state.history + [record])
            self._save(record)
        return self.checkpoint_path

    # -------------------------------------------------------------------- the epoch's steps

    def _pseudo_labels(self) -> tuple[torch.Tensor, PseudoLabels]:
        """Features [N, D] of the training images (gathered over ranks) and their pseudo-labels
        (clustered on rank 0, broadcast)."""
        features = self._extract(self.data.records)
        clusters_views = self.data.view_paths is not None and self.config.train.strategy == "joint"
        views = self._extract(self.data.view_records) if clusters_views else None
        labels = shared = num_vis = None
        if self.context.is_main:
            pseudo = compute_pseudo_labels(self.config.train.strategy, features, self.data.is_ir,
                                           self.config.cluster, views, np.array([r.pid for r in self.data.records]))
            labels, shared, num_vis = torch.from_numpy(pseudo.labels), pseudo.shared, pseudo.num_vis_clusters
        if self.context.enabled:
            message = [labels, shared, num_vis]
            dist.broadcast_object_list(message, src=0)
            labels, shared, num_vis = message
        return features, PseudoLabels(labels.numpy(), shared, num_vis)

    def _extract(self, records: list[Record]) -> torch.Tensor:
        """[N, D] L2-normalised features in record order; each rank extracts its share (no flip averaging)."""
        rank, world = self.context.rank, self.context.world_size
        local = extract_features(self.model, records[rank::world], self.device, batch_size=self.config.eval.batch_size,
                                 height=self.config.model.height, width=self.config.model.width, flip=False,
                                 num_workers=self._workers(), progress=self.context.is_main, preloaded=self.preloaded)
        if not self.context.enabled:
            return local
        shares = [None] * world
        dist.all_gather_object(shares, local)
        features = torch.empty(len(records), local.shape[1])
        for share_rank, share in enumerate(shares):
            features[share_rank::world] = share
        return features

    def _train_epoch(self, trained, pseudo: PseudoLabels, groups: list[MemoryGroup], epoch: int) -> dict:
        train, augment, model = self.config.train, self.config.augment, self.config.model
        transforms = {m: build_train_transform(model.height, model.width, pad=augment.pad, flip=augment.flip,
                                               erasing=augment.erasing, modality=m,
                                               channel_augment=augment.channel_augment, gpu=self.augment_on_device)
                      for m in ("vis", "ir")}
        uses_views = (pseudo.shared and self.data.view_paths is not None and train.strategy in VIEW_STRATEGIES
                      and (train.view_weight > 0 or train.cross_view_weight > 0))
        dataset = TrainingImages(self.data.records, pseudo.labels, transforms,
                                 self.data.view_paths if uses_views else None, self.preloaded)
        sampler = CrossModalitySampler(pseudo.labels, np.where(self.data.is_ir, "ir", "vis"),
                                       num_identities=train.num_identities, num_instances=train.num_instances,
                                       iterations=train.iterations, seed=self.config.runtime.seed,
                                       shared_labels=same_identities_in_both_halves(pseudo, self.data.is_ir,
                                                                                    train.num_identities),
                                       rank=self.context.rank, world_size=self.context.world_size)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=self._workers(),
                            worker_init_fn=seed_worker, generator=make_generator(self.config.runtime.seed + epoch),
                            pin_memory=self.device.type == "cuda")
        trained.train()
        sums: dict[str, float] = {}
        bar = progress(loader, desc=f"epoch {epoch + 1}", total=len(sampler), disable=None if self.context.is_main else True)
        for batch in bar:
            terms = self._step(trained, batch, groups, epoch, uses_views)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()})
        return {f"loss_{name}": total / max(len(sampler), 1) for name, total in sums.items()}

    def _step(self, trained, batch: dict, groups: list[MemoryGroup], epoch: int, uses_views: bool) -> dict[str, float]:
        """One optimiser step on a batch (and its views), then the explicit memory update."""
        labels, is_ir = batch["label"].to(self.device), batch["is_ir"].to(self.device)
        images = self._on_device(batch["image"], is_ir)
        inputs, stems = images, is_ir
        if uses_views:
            inputs, stems = torch.cat([images, self._on_device(batch["view"], ~is_ir)]), torch.cat([is_ir, ~is_ir])
        with autocast(self.device, self.config.runtime.bf16):
            outputs = trained(inputs, stems)["features"].float()
        features = torch.nn.functional.normalize(outputs, dim=1)
        own, view = features[: len(images)], features[len(images):] if uses_views else None
        train = self.config.train
        terms = {"cluster": memory_loss(groups, own, labels, is_ir, epoch, train)}
        if uses_views:
            terms["view"] = train.view_weight * memory_loss(groups, view, labels, ~is_ir, epoch, train)
            terms["cross_view"] = train.cross_view_weight * cross_view_nce(own, view, train.temperature)
        self.optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        self.optimizer.step()
        update_memories(groups, *self._gathered(own.detach(), labels, is_ir))
        return {name: float(value.item()) for name, value in terms.items()}

    def _workers(self) -> int:
        """Loader workers: none for preloaded images (serving them costs less than a worker's start and IPC)."""
        return 0 if self.preloaded is not None else self.config.runtime.workers

    def _on_device(self, images: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
        """Move a batch to the device; on CUDA the random augmentation runs there, on the whole batch."""
        images = images.to(self.device, non_blocking=True)
        if self.augment_on_device:
            augment = self.config.augment
            images = gpu_augment(images, pad=augment.pad, flip=augment.flip, erasing=augment.erasing,
                                 channel_augment=augment.channel_augment, is_ir=is_ir)
        return to_memory_format(images, self.channels_last)

    def _gathered(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """The batch of every rank (in rank order), so each rank's memories get the same updates."""
        if not self.context.enabled:
            return list(tensors)
        gathered = []
        for tensor in tensors:
            parts = [torch.empty_like(tensor) for _ in range(self.context.world_size)]
            dist.all_gather(parts, tensor.contiguous())
            gathered.append(torch.cat(parts))
        return gathered

    # -------------------------------------------------------------------- reports, evaluation, checkpoints

    def _cluster_report(self, pseudo: PseudoLabels) -> dict:
        pids = [record.pid for record in self.data.records]
        quality = cluster_quality(pseudo.labels, pids, np.where(self.data.is_ir, "ir", "vis"))
        logger.info("pseudo-labels: %s", quality.summary())
        report = quality.as_dict()
        return {k: v for k, v in report.items() if not isinstance(v, (list, dict))}

    def _evaluate(self, epoch: int) -> dict | None:
        """The dataset's protocol on rank 0; returns the mean metrics per setting."""
        result = None
        if self.context.is_main:
            model, config = self.model, self.config

            def features_of(records):
                return extract_features(model, records, self.device, batch_size=config.eval.batch_size,
                                        height=config.model.height, width=config.model.width,
                                        num_workers=config.runtime.workers)

            protocol = evaluate_protocol(features_of, self.data.dataset, settings=config.eval.settings,
                                         trials=config.eval.trials)
            result = {name: setting.mean() for name, setting in protocol.settings.items()}
            (self.out / "eval").mkdir(parents=True, exist_ok=True)
            (self.out / "eval" / f"epoch_{epoch:03d}.json").write_text(json.dumps(protocol.as_dict(), indent=2))
            logger.info("epoch %d evaluation:\n%s", epoch, protocol.table())
        barrier(self.context)
        return result

    def _save(self, record: dict) -> None:
        if self.context.is_main:
            with open(self.out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            extra = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "epoch": self.state.epoch, "rng": capture_rng_state(), "history": json.dumps(self.state.history)}
            save_model_checkpoint(self.checkpoint_path, self.model, self.config.model,
                                  config=config_to_dict(self.config), extra_state=extra, step=self.state.epoch)
        barrier(self.context)

    def _restore(self) -> None:
        path = self.checkpoint_path
        checkpoint = load_checkpoint(path, kind="reid")
        load_module_state(self.model, require_state(checkpoint, "model", path), name="model", path=path)
        self.optimizer.load_state_dict(require_state(checkpoint, "optimizer", path))
        self.scheduler.load_state_dict(require_state(checkpoint, "scheduler", path))
        restore_rng_state(require_state(checkpoint, "rng", path))
        self.state = RunState(int(require_state(checkpoint, "epoch", path)),
                              json.loads(require_state(checkpoint, "history", path)))
        logger.info("resumed from %s after epoch %d", path, self.state.epoch)


def load_training_data(config: ReIDConfig, context: DistributedContext) -> TrainingData:
    """The dataset's training images, paired with their translated views when `translated` is set."""
    if context.is_main:
        dataset = open_dataset(config.data)
    barrier(context)
    if not context.is_main:
        dataset = open_dataset(config.data)
    records, view_paths = dataset.train, None
    if config.translated:
        records, view_paths = TranslatedViews(config.translated, dataset.root).pair(records)
    elif config.train.strategy == "joint":
        raise ValueError("train.strategy=joint needs the translated views: set translated=<OUT of vi-translate "
                         "translate>, or choose train.strategy=none / per_modality_hungarian")
    is_ir = np.array([record.modality == "ir" for record in records])
    return TrainingData(records, view_paths, is_ir, dataset)


def preload_training_images(data: TrainingData, config: ReIDConfig) -> PreloadedImages:
    """The training images and their translated views, decoded and resized to the model's input once."""
    paths = [record.path for record in data.records] + list(data.view_paths or [])
    return PreloadedImages(paths, config.model.height, config.model.width)


def same_identities_in_both_halves(pseudo: PseudoLabels, is_ir: np.ndarray, num_identities: int) -> bool:
    """Whether batches draw the same P pseudo-identities for their visible and infrared halves: in a shared
    label space with at least P clusters holding both modalities; otherwise each half draws its own."""
    if not pseudo.shared:
        return False
    labels = pseudo.labels
    mixed = np.intersect1d(labels[(labels >= 0) & ~is_ir], labels[(labels >= 0) & is_ir])
    if len(mixed) < num_identities:
        logger.info("%d clusters hold both modalities (fewer than %d identities per batch): each half of a batch "
                    "draws its own identities", len(mixed), num_identities)
        return False
    return True


def build_memories(features: torch.Tensor, pseudo: PseudoLabels, is_ir: np.ndarray, train, epoch: int,
                   device: torch.device, seed: int) -> list[MemoryGroup]:
    """One memory group over the shared label space, or one per modality; hard and dynamic prototypes
    from `train.hard_dynamic_from` on (PCLHD's progressive schedule)."""
    kinds = PROTOTYPES if epoch >= train.hard_dynamic_from else ("centroid",)
    labels = torch.from_numpy(pseudo.labels)
    is_ir = torch.from_numpy(is_ir)
    if pseudo.shared:
        parts = [(None, 0, torch.ones_like(is_ir))]
    else:
        parts = [("vis", 0, ~is_ir), ("ir", pseudo.num_vis_clusters, is_ir)]
    groups = []
    for modality, offset, rows in parts:
        group_labels = torch.where(labels[rows] >= 0, labels[rows] - offset, -1)
        memories = {kind: ClusterMemory.from_features(features[rows], group_labels, prototype=kind,
                                                      temperature=train.temperature, momentum=train.momentum,
                                                      generator=make_generator(seed * 1000 + epoch)).to(device)
                    for kind in kinds}
        groups.append(MemoryGroup(memories, modality, offset))
    return groups


def memory_loss(groups: list[MemoryGroup], features: torch.Tensor, labels: torch.Tensor, is_ir: torch.Tensor,
                epoch: int, train) -> torch.Tensor:
    """Cluster NCE of features [B, D] against each group's prototypes, with PCLHD's progressive weighting."""
    total = features.new_zeros(())
    for group in groups:
        rows = group.rows(labels, is_ir)
        group_labels = labels[rows] - group.offset
        losses = {kind: memory.loss(features[rows], group_labels) for kind, memory in group.memories.items()}
        total = total + progressive_prototype_loss(losses["centroid"], losses.get("hard"), losses.get("dynamic"),
                                                   epoch=epoch, start_epoch=train.hard_dynamic_from,
                                                   weight=train.hard_dynamic_weight)
    return total


def update_memories(groups: list[MemoryGroup], features: torch.Tensor, labels: torch.Tensor,
                    is_ir: torch.Tensor) -> None:
    """The explicit momentum update of every memory with the batch's (detached) features."""
    for group in groups:
        rows = group.rows(labels, is_ir)
        for memory in group.memories.values():
            memory.update(features[rows], labels[rows] - group.offset)
