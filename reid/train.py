"""The unsupervised ReID loop: `train_reid(config)`, for any method of `reid.methods` (`method.name`).

Training runs the config's stages in order (`train.stages`: e.g. 50 epochs intra-modality, then 50 cross-modal
epochs from a fresh optimiser, as ADCA / PGM / PCLHD); the first stage follows the method's "intra" rules, every
later one its "cross" rules. Per epoch, as plain function calls: extract flip-averaged features of the images (and
of their translated views, or by the method's teacher, when it asks) -> the method's pseudo-labels (rank 0,
broadcast) -> its plan: memories and passes -> `iterations` iterations, each an optimiser step per pass on batches
of a visible half and an infrared half drawn independently (camera-aware P x K each) -> cluster quality against
the true ids -> evaluate every E epochs -> checkpoint. The loop names no method.

A run resumes from its last checkpoint (epoch granularity, inside a stage or across a boundary) to the same weights
as an uninterrupted run; only the same run resumes (`reid.resume`: other settings are refused, `fresh=True` starts
afresh). Under torchrun, features are gathered for clustering on rank 0, the labels broadcast, every rank's
memories updated with the batches of all ranks, and rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, load_module_state, require_state
from .config import ConfigError, config_from_dict, config_to_dict, save_config
from .cluster import summarize_clusters
from .data import NoIdentitiesError, Record, TranslatedViews, dataset_has_identities, open_dataset
from .data.io import raise_image_errors
from .data.preload import PreloadedImages
from .data.samplers import CameraAwareSampler
from .data.training_images import OTHER_MODALITY, TrainingImages
from .data.transforms import build_train_transform, gpu_augment
from .evaluation import cluster_quality, evaluate_protocol
from .features import extract_features
from .files import check_output_folder, write_text_atomically
from .methods import EpochContext, EpochPlan, Method, Objective, StepBatch, build_method, phase_of
from .models import build_model_from_config, save_model_checkpoint
from .pretrain import check_disjoint_start
from .pseudo_labels import PseudoLabels
from .resume import (REID_RULE, REID_RUN_FILES, REID_SAFE, ResumeError, check_resume, reid_resume_changes,
                     set_aside)
from .runtime import (DistributedContext, autocast, barrier, capture_rng_state, init_distributed, make_generator,
                      progress, resolve_device, restore_rng_state, seed_everything, seed_worker, shutdown,
                      to_memory_format, use_channels_last)
from .tensorboard import TensorBoardLog, reid_epoch_scalars
from .train_config import AugmentConfig, MethodConfig, ReIDConfig, ReIDTrainConfig, StageConfig

logger = logging.getLogger(__name__)
MODALITIES = ("vis", "ir")


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

    def rows_of(self, modality: str) -> np.ndarray:
        """Indices [n] of the records of one modality, in record order."""
        return np.flatnonzero(self.is_ir if modality == "ir" else ~self.is_ir)


@dataclass
class RunState:
    epoch: int = 0  # the next epoch to train (counted over all stages)
    history: list[dict] = field(default_factory=list)


def train_reid(config: ReIDConfig, *, fresh: bool = False) -> Path:
    """Train a ReID model without labels; returns the final checkpoint (a `vireid evaluate` checkpoint holding the
    model the method delivers).

    A run folder holding a checkpoint resumes it when `config` is the same run (`check_same_run`), else
    ResumeError. fresh: first move the old run's files (REID_RUN_FILES) into <output_dir>/previous/<n>/.
    """
    check_output_folder(config.output_dir, what="output_dir")
    context = init_distributed(config.runtime.device)
    try:
        return _Run(with_method_options(config), context).train(fresh)
    finally:
        shutdown(context)


def with_method_options(config: ReIDConfig) -> ReIDConfig:
    """`config` with every option of its method written out (what config.yaml and the checkpoint record)."""
    return dataclasses.replace(config, method=MethodConfig(config.method.name, config.method.resolved_options()))


def method_of(config: ReIDConfig | dict) -> Method:
    """The method a config (or a config dict's "method" section) trains with."""
    section = config.method if isinstance(config, ReIDConfig) else MethodConfig(**(config.get("method") or {}))
    return build_method(section.name, section.options)


def stage_phases(train: ReIDTrainConfig) -> dict[str, str]:
    """stage name -> its phase ("intra" for the first stage of train.stages, "cross" for every later one)."""
    return {name: phase_of(index) for index, name in enumerate(train.stages)}


def stage_reads_views(config: ReIDConfig, stage: str) -> bool:
    """Whether a stage of `config` clusters or trains on the translated views (when the run has them)."""
    return method_of(config).uses_views(stage_phases(config.train)[stage], True)


def build_optimizer(model: torch.nn.Module, stage: StageConfig, previous: torch.optim.Optimizer | None = None
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
    """Adam and a step schedule for a stage (the references' optimiser); with `previous` (a stage that keeps
    the optimiser), its moments carry over and the stage's learning rate and weight decay are set."""
    optimizer = torch.optim.Adam(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    if previous is not None:
        optimizer.load_state_dict(previous.state_dict())
        for group in optimizer.param_groups:
            group.update(lr=stage.lr, initial_lr=stage.lr, weight_decay=stage.weight_decay)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=stage.step_size, gamma=stage.gamma)


class _Run:
    def __init__(self, config: ReIDConfig, context: DistributedContext) -> None:
        self.config, self.context, self.device = config, context, context.device
        self.out = Path(config.output_dir)
        self.checkpoint_path = self.out / "checkpoints" / "last.pt"
        seed_everything(config.runtime.seed)
        self.method = method_of(config)
        self.phases = stage_phases(config.train)
        self.data = load_training_data(config, context, self.method)
        check_disjoint_start(config.model.pretrained, config.model.arch, self.data.dataset)
        self.channels_last = use_channels_last(self.device, config.runtime.channels_last)
        # random augmentation on whole batches on the device (then the workers only resize and normalise)
        on_device = config.augment.on_device
        self.augment_on_device = self.device.type == "cuda" if on_device is None else on_device
        self.preloaded = preload_training_images(self.data, config) if config.train.preload_images else None
        self.augment_on_device = self.augment_on_device or self.preloaded is not None
        self.model = to_memory_format(build_model_from_config(config.model).to(self.device), self.channels_last)
        self.optimizer = self.scheduler = None  # built at each stage's start (or restored)
        self.state = RunState()
        self.tensorboard = TensorBoardLog(self.out, enabled=False)  # `train` opens the run's own

    def train(self, fresh: bool = False) -> Path:
        if fresh:
            self._set_aside()
        if self.checkpoint_path.exists():
            self._restore()
        if self.context.is_main:
            save_config(self.config, self.out)
            write_history(self.out / "metrics.jsonl", self.state.history)
        # rank 0's TensorBoard events; those of the epochs after the checkpoint's are dropped, as their lines are
        self.tensorboard = TensorBoardLog(self.out, enabled=self.config.runtime.tensorboard and self.context.is_main,
                                          purge_step=self.state.epoch + 1)
        trained = self.model if not self.context.enabled else DistributedDataParallel(self.model)
        train = self.config.train
        last_epoch = train.epochs if train.max_epochs is None else min(train.epochs, train.max_epochs)
        for epoch in range(self.state.epoch, last_epoch):
            started = time.perf_counter()
            name, stage, stage_epoch = train.stage_at(epoch)
            phase = self.phases[name]
            if stage_epoch == 0:
                keep = self.optimizer if not stage.restart_optimizer else None
                self.optimizer, self.scheduler = build_optimizer(self.model, stage, keep)
                self.method.start_stage(phase, self.model)
                logger.info("stage %s: %d epochs, %s's %s rules", name, stage.epochs, self.method.name, phase)
            plan = self._plan(phase, stage_epoch, epoch)
            losses = self._train_epoch(trained, plan, stage, epoch)
            self.scheduler.step()
            record = {"epoch": epoch + 1, "stage": name, "stage_epoch": stage_epoch + 1,
                      "lr": self.optimizer.param_groups[0]["lr"], **losses,
                      "cluster": self._cluster_report(plan.report), "seconds": round(time.perf_counter() - started, 1)}
            if plan.notes:
                record["method"] = plan.notes
            evaluated = (epoch + 1) % self.config.eval.every == 0 or epoch + 1 == last_epoch
            if evaluated and self.data.dataset.has_identities:
                record["eval"] = self._evaluate(epoch + 1)
            self.state = RunState(epoch + 1, self.state.history + [record])
            self._save(record)
        self.tensorboard.close()
        return self.checkpoint_path

    # -------------------------------------------------------------------- the epoch's steps

    def _plan(self, phase: str, stage_epoch: int, epoch: int) -> EpochPlan:
        """The method's plan of this epoch: features (gathered over ranks), its pseudo-labels (computed on rank 0,
        broadcast) and its memories and passes (built on every rank)."""
        method, data = self.method, self.data
        context = EpochContext(
            features=self._extract(data.records), is_ir=data.is_ir,
            true_ids=np.array([record.pid for record in data.records]), cluster=self.config.cluster,
            temperature=self.config.train.temperature, momentum=self.config.train.momentum, stage_epoch=stage_epoch,
            seed=self.config.runtime.seed * 1000 + epoch, device=self.device, has_views=data.view_paths is not None,
            view_features=self._extract(data.view_records) if method.needs_view_features(phase) else None,
            teacher_features=(self._extract(data.records, method.teacher())
                              if method.needs_teacher_features(phase) else None))
        message = [method.pseudo_labels(phase, context) if self.context.is_main else None]
        if self.context.enabled:
            dist.broadcast_object_list(message, src=0)
        return method.plan(phase, context, message[0])

    def _extract(self, records: list[Record], model: nn.Module | None = None) -> torch.Tensor:
        """[N, D] clustering features in record order (of the student, or `model`), as the references: the mean of
        the L2-normalised features of each image and its flip (not normalised again), bf16 only under
        runtime.bf16; each rank its share."""
        rank, world = self.context.rank, self.context.world_size
        local = extract_features(model or self.model, records[rank::world], self.device,
                                 batch_size=self.config.eval.batch_size, height=self.config.model.height,
                                 width=self.config.model.width, flip=True, normalise=False,
                                 bf16=self.config.runtime.bf16, num_workers=self._workers(),
                                 progress=self.context.is_main, preloaded=self.preloaded)
        if not self.context.enabled:
            return local
        shares = [None] * world
        dist.all_gather_object(shares, local)
        features = torch.empty(len(records), local.shape[1])
        for share_rank, share in enumerate(shares):
            features[share_rank::world] = share
        return features

    def _loader(self, modality: str, labels: np.ndarray, uses_views: bool, stage: StageConfig, epoch: int,
                stream: int) -> DataLoader:
        """One modality's half of a pass's batches: camera-aware P x K over its images, drawn independently of the
        other half and of the other passes (its own sampler stream)."""
        train, augment, model = self.config.train, self.config.augment, self.config.model
        rows = self.data.rows_of(modality)
        records = [self.data.records[row] for row in rows]
        views = [self.data.view_paths[row] for row in rows] if uses_views else None
        transforms = training_transforms(augment, model.height, model.width, gpu=self.augment_on_device)
        dataset = TrainingImages(records, labels[rows], transforms, views, self.preloaded,
                                 exchanged_copy=augment.caj and modality == "vis" and not self.augment_on_device)
        sampler = CameraAwareSampler(labels[rows], [record.camid for record in records],
                                     num_identities=batch_identities(train, stage, modality),
                                     num_instances=train.num_instances, iterations=train.iterations,
                                     seed=self.config.runtime.seed, stream=stream, rank=self.context.rank,
                                     world_size=self.context.world_size)
        sampler.set_epoch(epoch)
        seed = (self.config.runtime.seed * 100_003 + epoch) * len(MODALITIES) + stream
        return DataLoader(dataset, batch_sampler=sampler, num_workers=self._workers(), worker_init_fn=seed_worker,
                          generator=make_generator(seed), pin_memory=self.device.type == "cuda")

    def _train_epoch(self, trained, plan: EpochPlan, stage: StageConfig, epoch: int) -> dict:
        """`train.iterations` iterations, each one optimiser step per pass of the plan; mean loss terms."""
        has_views = self.data.view_paths is not None
        uses_views = [training_pass.objective.uses_views and has_views for training_pass in plan.passes]
        halves = [self._loader(modality, training_pass.labels, views, stage, epoch,
                               stream=len(MODALITIES) * index + MODALITIES.index(modality))
                  for index, (training_pass, views) in enumerate(zip(plan.passes, uses_views))
                  for modality in MODALITIES]
        trained.train()
        sums: dict[str, float] = {}
        steps = self.config.train.iterations
        bar = progress(raise_image_errors(zip(*halves)), desc=f"epoch {epoch + 1}", total=steps,
                       disable=None if self.context.is_main else True)
        for batches in bar:
            terms = {}
            for index, (training_pass, views) in enumerate(zip(plan.passes, uses_views)):
                vis, ir = batches[2 * index], batches[2 * index + 1]
                terms |= self._step(trained, self._batch(vis, ir, views), training_pass.objective)
            self.method.after_iteration(self.model)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()})
        return {f"loss_{name}": total / steps for name, total in sums.items()}

    def _batch(self, vis: dict, ir: dict, uses_views: bool) -> dict[str, torch.Tensor]:
        """The step's inputs on the device, augmented: images [B, 3, H, W] (visible colour copies, their
        channel-exchanged copies under CAJ, infrared), their labels [B] and stems is_ir [B]; with the views,
        views [V, 3, H, W] (of the visible, then of the infrared images), their stems view_is_ir [V] (the other
        modality's) and view_rows [V], the row of `images` each view belongs to."""
        caj = self.config.augment.caj
        vis_images, ir_images = (batch["image"].to(self.device, non_blocking=True) for batch in (vis, ir))
        pieces = [(self._augment(vis_images, "vis"), vis["label"], False)]
        if caj:
            exchanged = vis["exchanged"].to(self.device) if "exchanged" in vis else vis_images
            pieces.append((self._augment(exchanged, "vis_exchanged"), vis["label"], False))
        pieces.append((self._augment(ir_images, "ir"), ir["label"], True))
        batch = _stack(pieces, self.device)
        if uses_views:
            views = _stack([(self._augment(vis["view"].to(self.device), "ir"), vis["label"], True),
                            (self._augment(ir["view"].to(self.device), "vis"), ir["label"], False)], self.device)
            num_vis = len(vis_images)
            copies = num_vis * (2 if caj else 1)  # the infrared rows start after the visible copies
            own_rows = torch.cat([torch.arange(num_vis), copies + torch.arange(len(ir_images))]).to(self.device)
            batch |= {"views": views["images"], "view_is_ir": views["is_ir"], "view_rows": own_rows}
        return batch

    def _step(self, trained, batch: dict, objective: Objective) -> dict[str, float]:
        """One optimiser step on a batch (and its views) with a pass's objective, then its memory updates."""
        images, labels, is_ir = batch["images"], batch["labels"], batch["is_ir"]
        views = batch.get("views")
        inputs, stems = images, is_ir
        if views is not None:
            inputs, stems = torch.cat([images, views]), torch.cat([is_ir, batch["view_is_ir"]])
        with autocast(self.device, self.config.runtime.bf16):
            outputs = trained(to_memory_format(inputs, self.channels_last), stems)["features"].float()
        features = torch.nn.functional.normalize(outputs, dim=1)
        step = StepBatch(features[: len(images)], labels, is_ir)
        if views is not None:
            step.view_features, step.view_rows = features[len(images):], batch["view_rows"]
        if objective.uses_teacher:
            step.teacher_features = self._teacher_features(images, is_ir)
        everyone = self._gathered(step)  # what the memory updates read
        if self.config.train.memory_update == "in_backward":
            step.update_batch = everyone
        terms = objective.loss(step)
        self.optimizer.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        self.optimizer.step()
        objective.update(everyone)
        return {name: float(value.item()) for name, value in terms.items()}

    @torch.no_grad()
    def _teacher_features(self, images: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
        """[B, D] L2-normalised features of the method's teacher on the student's inputs, in train mode (its
        BatchNorm statistics follow these batches, as PCLHD's `model_ema.train()` forward does)."""
        teacher = self.method.teacher()
        teacher.train()
        with autocast(self.device, self.config.runtime.bf16):
            outputs = teacher(to_memory_format(images, self.channels_last), is_ir)["features"].float()
        return torch.nn.functional.normalize(outputs, dim=1)

    def _workers(self) -> int:
        """Loader workers: none for preloaded images (serving them costs less than a worker's start and IPC)."""
        return 0 if self.preloaded is not None else self.config.runtime.workers

    def _augment(self, images: torch.Tensor, kind: str) -> torch.Tensor:
        """A batch [B, 3, H, W] already on the device; when augmenting on the device, the random augmentation of
        its kind (`training_augmentations`) runs here on the whole batch, else the workers did it."""
        if not self.augment_on_device:
            return images
        augment = self.config.augment
        return gpu_augment(images, pad=augment.pad, flip=augment.flip, erasing=augment.erasing,
                           **training_augmentations(augment)[kind])

    def _gathered(self, step: StepBatch) -> StepBatch:
        """The detached batch of every rank (in rank order), so each rank's memories get the same updates; the
        views stay out (no memory update reads them)."""
        tensors = [step.features.detach(), step.labels, step.is_ir]
        if step.teacher_features is not None:
            tensors.append(step.teacher_features)
        if self.context.enabled:
            tensors = [self._all_ranks(tensor) for tensor in tensors]
        return StepBatch(*tensors[:3], teacher_features=tensors[3] if len(tensors) > 3 else None)

    def _all_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(self.context.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    # -------------------------------------------------------------------- reports, evaluation, checkpoints

    def _cluster_report(self, pseudo: PseudoLabels) -> dict:
        """The epoch's cluster quality against the true ids (scalars of `cluster_quality`); for a dataset without
        identities (`has_identities` False: data.name=folder) the cluster report alone (`summarize_clusters`:
        clusters, outliers, sizes max / median / min, clusters holding both modalities)."""
        modalities = np.where(self.data.is_ir, "ir", "vis")
        if not self.data.dataset.has_identities:
            clusters = summarize_clusters(pseudo.labels, modalities)
            logger.info("pseudo-labels: %s", clusters.summary())
            sizes = clusters.sizes
            report = {k: v for k, v in clusters.as_dict().items() if not isinstance(v, (list, dict))}
            return {**report, "outlier_fraction": clusters.num_outliers / clusters.num_samples if clusters.num_samples
                    else None, "size_max": sizes[0] if sizes else None,
                    "size_median": float(np.median(sizes)) if sizes else None, "size_min": sizes[-1] if sizes else None}
        pids = [record.pid for record in self.data.records]
        quality = cluster_quality(pseudo.labels, pids, modalities)
        logger.info("pseudo-labels: %s", quality.summary())
        report = quality.as_dict()
        return {k: v for k, v in report.items() if not isinstance(v, (list, dict))}

    def _evaluate(self, epoch: int) -> dict | None:
        """The dataset's protocol, on rank 0, of the model the method delivers; returns the mean metrics per
        setting (the loop does not call it for a dataset without identities: data.name=folder has no test split)."""
        result = None
        if self.context.is_main:
            result = evaluate_epoch(self.method.delivered_model(self.model), self.data.dataset, self.config,
                                    self.device, epoch)
        barrier(self.context)
        return result

    def _save(self, record: dict) -> None:
        """metrics.jsonl's line and the checkpoint: "model" holds the delivered model (what `vireid evaluate`
        reads), "student" the trained network when that is another one, "method" the method's state."""
        if self.context.is_main:
            with open(self.out / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            self.tensorboard.scalars(record["epoch"], reid_epoch_scalars(record))
            self.tensorboard.flush()  # on disk before the checkpoint: a kill loses no point of a checkpointed epoch
            delivered = self.method.delivered_model(self.model)
            extra = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "epoch": self.state.epoch, "rng": capture_rng_state(), "history": json.dumps(self.state.history),
                     "method": self.method.state_dict()}
            if delivered is not self.model:
                extra["student"] = self.model.state_dict()
            save_model_checkpoint(self.checkpoint_path, delivered, self.config.model,
                                  config=config_to_dict(self.config), extra_state=extra, step=self.state.epoch)
        barrier(self.context)

    def _set_aside(self) -> None:
        """Start afresh: rank 0 moves the old run's files aside."""
        if self.context.is_main:
            moved = set_aside(self.out, REID_RUN_FILES)
            if moved is not None:
                logger.info("starting afresh: the previous run's files are in %s", moved)
        barrier(self.context)

    def _restore(self) -> None:
        path = self.checkpoint_path
        checkpoint = load_checkpoint(path, kind="reid")
        epoch = int(require_state(checkpoint, "epoch", path))
        check_same_run(checkpoint["config"], self.config, epoch, path)
        student = checkpoint["state"].get("student")
        load_module_state(self.model, student if student is not None else require_state(checkpoint, "model", path),
                          name="model", path=path)
        self.method.load_state_dict(checkpoint["state"].get("method") or {}, self.model)
        self.state = RunState(epoch, json.loads(require_state(checkpoint, "history", path)))
        if self.state.epoch > 0:  # the optimiser of the stage the last finished epoch belongs to
            _, stage, _ = self.config.train.stage_at(min(self.state.epoch, self.config.train.epochs) - 1)
            self.optimizer, self.scheduler = build_optimizer(self.model, stage)
            self.optimizer.load_state_dict(require_state(checkpoint, "optimizer", path))
            self.scheduler.load_state_dict(require_state(checkpoint, "scheduler", path))
        restore_rng_state(require_state(checkpoint, "rng", path))
        logger.info("resumed from %s after epoch %d", path, self.state.epoch)


def evaluate_epoch(model: nn.Module, dataset, config: ReIDConfig, device: torch.device, epoch: int) -> dict:
    """The dataset's protocol on `model` (eval.settings, eval.trials), written to OUTPUT_DIR/eval/epoch_<epoch>.json
    and logged; returns the mean metrics per setting."""
    # with preloaded (small) training images, the test images decode faster than loader workers start
    workers = 0 if config.train.preload_images else config.runtime.workers

    def features_of(records):
        return extract_features(model, records, device, batch_size=config.eval.batch_size, height=config.model.height,
                                width=config.model.width, num_workers=workers)

    protocol = evaluate_protocol(features_of, dataset, settings=config.eval.settings, trials=config.eval.trials)
    out = Path(config.output_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / f"epoch_{epoch:03d}.json", json.dumps(protocol.as_dict(), indent=2))
    logger.info("epoch %d evaluation:\n%s", epoch, protocol.table())
    return {name: setting.mean() for name, setting in protocol.settings.items()}


def evaluate_start(config: ReIDConfig) -> Path:
    """The model a run of `config` starts from (`model.pretrained`, or a random init), evaluated as it is, before
    any training: what the start alone gives, as one reports ImageNet features. Writes the run folder as a run of no
    epoch does: config.yaml, eval/epoch_000.json, metrics.jsonl with one record (epoch 0, stage "start", its
    evaluation) and checkpoints/last.pt; returns the checkpoint."""
    device = resolve_device(config.runtime.device)
    seed_everything(config.runtime.seed)
    dataset = open_dataset(config.data)
    if not dataset.has_identities:
        raise NoIdentitiesError(f"data.name={config.data.name} has no identities: the start cannot be evaluated")
    check_disjoint_start(config.model.pretrained, config.model.arch, dataset)
    model = build_model_from_config(config.model).to(device)
    out = Path(config.output_dir)
    save_config(config, out)
    record = {"epoch": 0, "stage": "start", "eval": evaluate_epoch(model, dataset, config, device, 0)}
    write_history(out / "metrics.jsonl", [record])
    return save_model_checkpoint(out / "checkpoints" / "last.pt", model, config.model, config=config_to_dict(config),
                                 extra_state={"epoch": 0, "history": json.dumps([record])})


def batch_identities(train: ReIDTrainConfig, stage: StageConfig, modality: str) -> int:
    """P of one modality's half of a batch in `stage`: the stage's value, else the train section's (the visible
    half's falls back to the infrared half's)."""
    infrared = stage.num_identities or train.num_identities
    if modality == "ir":
        return infrared
    return stage.vis_identities or train.vis_identities or infrared


def check_same_run(saved: dict, config: ReIDConfig, epoch: int, checkpoint: Path) -> None:
    """Raise ResumeError (`reid.resume`) unless `config` continues the run of `checkpoint`, saved under the config
    dict `saved` after `epoch` finished epochs. The method may differ where the stages begun follow the same rules
    under both (`Method.stage_rules`)."""
    saved = with_defaults(saved, checkpoint)
    current = config_to_dict(with_method_options(config))

    def reads_views(config_dict: dict, index: int) -> bool:
        return method_of(config_dict).uses_views(phase_of(index), True)

    def rules(config_dict: dict, index: int) -> dict:
        return method_of(config_dict).stage_rules(phase_of(index))

    changes = reid_resume_changes(saved, current, epoch, reads_views=reads_views, stage_rules=rules)
    check_resume(changes, checkpoint=checkpoint, run_dir=Path(config.output_dir), run_files=REID_RUN_FILES,
                 safe=REID_SAFE, rule=REID_RULE)


def write_history(path: Path, history: list[dict]) -> None:
    """metrics.jsonl as the checkpoint has it (one record per finished epoch; none without a checkpoint), written
    atomically: the line of an epoch whose run was killed before its checkpoint is dropped, as that epoch runs
    again."""
    write_text_atomically(path, "".join(json.dumps(record) + "\n" for record in history))


def with_defaults(saved: dict, checkpoint: Path) -> dict:
    """A saved config dict with the keys the schema gained since filled with their defaults (so a run saved before
    they existed compares equal on them) and its method's options written out; its stages are kept as saved, each
    filled the same way. A config this toolkit cannot read (keys it no longer knows) is a ResumeError."""
    stages = saved.get("train", {}).get("stages") or {}
    rest = {**saved, "train": {k: v for k, v in saved.get("train", {}).items() if k != "stages"}}
    try:
        filled = config_to_dict(with_method_options(config_from_dict(ReIDConfig, rest,
                                                                     source=f"{checkpoint} (saved config)")))
        filled["train"]["stages"] = {name: config_to_dict(config_from_dict(StageConfig, stage, source=str(checkpoint),
                                                                           prefix=f"train.stages.{name}."))
                                     for name, stage in stages.items()}
    except ConfigError as error:
        raise ResumeError(f"{error}\nThe checkpoint was written under settings this toolkit no longer has, so it "
                          f"cannot be resumed: start afresh with --fresh (fresh=True) or use a new output_dir.") from None
    return filled


def load_training_data(config: ReIDConfig, context: DistributedContext, method: Method) -> TrainingData:
    """The dataset's training images, paired with their translated views when `translated` is set and the method
    uses them in some stage (an error when a stage of the method clusters them and `translated` is not set). A dataset
    without identities (data.name=folder) is refused, before it is read, for a method that trains on the true ids
    (`needs_identities`: oracle), and otherwise noted once: its cluster quality against true ids and test protocol
    are skipped."""
    if not dataset_has_identities(config.data.name):
        if method.needs_identities:
            raise NoIdentitiesError(
                f"method.name={method.name} trains on the true identities, but data.name={config.data.name} has none "
                f"(unlabelled footage: every image's pid is -1): choose a method that needs no identities, e.g. "
                f"cluster_contrast, adca, pgm, pclhd (or joint, with translated=<OUT of vi-translate translate>)")
        if context.is_main:
            logger.info("data.name=%s has no identities: cluster quality against true ids and the test protocol are "
                        "skipped (the cluster report is still logged and recorded in metrics.jsonl)", config.data.name)
    if context.is_main:
        dataset = open_dataset(config.data)
    barrier(context)
    if not context.is_main:
        dataset = open_dataset(config.data)
    records, view_paths = dataset.train, None
    reads_views = any(method.uses_views(phase, True) for phase in stage_phases(config.train).values())
    if config.translated and reads_views:
        records, view_paths = TranslatedViews(config.translated, dataset.root).pair(records)
    elif config.translated:
        logger.info("translated: not read, method %s trains on no translated view", method.name)
    else:
        needing = [name for name, phase in stage_phases(config.train).items()
                   if method.requires_views(phase) and config.train.stages[name].epochs > 0]
        if needing:
            raise ValueError(f"method {method.name} clusters the translated views in stage {needing[0]}: set "
                             f"translated=<OUT of vi-translate translate>, or choose a method that needs none "
                             f"(cluster_contrast, adca, pgm, pclhd)")
    is_ir = np.array([record.modality == "ir" for record in records])
    return TrainingData(records, view_paths, is_ir, dataset)


def preload_training_images(data: TrainingData, config: ReIDConfig) -> PreloadedImages:
    """The training images and their translated views, decoded and resized to the model's input once."""
    paths = [record.path for record in data.records] + list(data.view_paths or [])
    return PreloadedImages(paths, config.model.height, config.model.width)


def training_transforms(augment: AugmentConfig, height: int, width: int, gpu: bool = False) -> dict[str, object]:
    """kind -> PIL image to augmented tensor [3, H, W], for the loader workers. Kinds: "vis" (a visible image's
    colour copy, and an infrared image's translated view), "vis_exchanged" (CAJ's channel-exchanged copy) and
    "ir" (infrared images and the views of visible images). gpu: resize and normalise only (`_augment` does the
    rest on whole batches)."""
    return {kind: build_train_transform(height, width, pad=augment.pad, flip=augment.flip, erasing=augment.erasing,
                                        gpu=gpu, **options)
            for kind, options in training_augmentations(augment).items()}


def training_augmentations(augment: AugmentConfig) -> dict[str, dict]:
    """kind -> the channel operation and colour jitter of its augmentation, as ADCA / PGM / PCLHD: the exchanged
    copy gets ChannelExchange(gray=2) (after PGM's colour jitter), infrared ChannelAdapGray(0.5), under CAJ."""
    return {"vis": {"channel_op": None, "color_jitter": 0.0},
            "vis_exchanged": {"channel_op": "exchange", "color_jitter": augment.color_jitter},
            "ir": {"channel_op": "adaptive_grey" if augment.caj else None, "color_jitter": 0.0}}


def _stack(pieces: list[tuple[torch.Tensor, torch.Tensor, bool]], device: torch.device) -> dict[str, torch.Tensor]:
    """(images [b, 3, H, W], labels [b], is_ir) pieces -> {"images" [B, 3, H, W], "labels" [B], "is_ir" [B]}."""
    return {"images": torch.cat([images for images, _, _ in pieces]),
            "labels": torch.cat([labels for _, labels, _ in pieces]).to(device),
            "is_ir": torch.cat([torch.full((len(labels),), flag, dtype=torch.bool) for _, labels, flag in pieces]
                               ).to(device)}
