"""The translator's training loop: `train_translator(config)`.

Every K steps it writes a sample grid, the loss curves and a metrics line (and, with the tensorboard package,
the same scalars and grids as TensorBoard events in tensorboard/, `reid.tensorboard`); checkpoints hold the whole
state (networks, optimizers, schedulers, image pools, RNG states, position in the epoch), and the data
order is a pure function of (seed, epoch, rank), so a run resumed from a checkpoint reaches the same
weights as an uninterrupted one. Only the same run resumes (`resume_changes`: other settings are refused,
`fresh=True` starts afresh). A NaN or infinite loss stops training before anything is saved.
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from reid.checkpoint import CheckpointError, require_state
from reid.config import config_to_dict, save_config
from reid.data import Record, open_dataset, read_image
from reid.data.io import raise_image_errors
from reid.files import check_output_folder, write_text_atomically
from reid.resume import Change, changed_settings, check_resume, set_aside
from reid.runtime import (DistributedContext, autocast, barrier, broadcast_parameters, capture_rng_state,
                          init_distributed, make_generator, progress, restore_rng_state, seed_everything, seed_worker,
                          shutdown, to_memory_format, use_channels_last)
from reid.tensorboard import TENSORBOARD_DIR, TensorBoardLog

from .checkpoint import load_nets_state, read_translator_checkpoint, save_translator_checkpoint
from .config import TranslatorConfig
from .cyclegan import NonFiniteLoss, StepTools, build_nets, train_step, translate_both_ways
from .data import UnpairedImages, image_mode, plan_epoch, resize_for_model, to_model_range
from .visualize import plot_loss_curves, save_translation_grid

logger = logging.getLogger(__name__)
# settings a resumed run may change: none of them changes the weights (every item's augmentation is seeded by the
# epoch plan, whatever the workers; samples, checkpoints and TensorBoard events draw nothing); train.epochs and
# train.epochs_decay follow `resume_changes`'s rule
RESUME_SAFE = frozenset({"runtime.log_level", "runtime.workers", "runtime.tensorboard", "train.log_every",
                         "train.sample_every", "train.checkpoint_every", "train.num_samples", "train.max_steps",
                         "output_dir"})
SCHEDULE_KEYS = frozenset({"train.epochs", "train.epochs_decay"})
RESUME_RULE = ", and train.epochs and train.epochs_decay while the learning rate of every epoch begun stays the same"
RUN_FILES = ("checkpoints", "metrics.jsonl", "samples", "loss_curves.png", TENSORBOARD_DIR,
             "config.yaml")  # what fresh moves aside
SAMPLES_TAG = "samples"  # the TensorBoard tag of the sample grids
NCE_SEED_OFFSET = 3  # the patch generator's seed is runtime.seed + 3 (the pools' are + 1 and + 2)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class Position:
    """Where training stands: optimiser steps taken, the epoch, and the steps taken in that epoch."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0


@dataclass(frozen=True)
class RunPaths:
    """The files of a run folder."""

    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def curves(self) -> Path:
        return self.root / "loss_curves.png"

    def sample(self, step: int) -> Path:
        return self.root / "samples" / f"step_{step:07d}.png"


def linear_decay(epochs: int, epochs_decay: int):
    """The reference schedule: factor 1 for `epochs` epochs, then linearly down to 0 over `epochs_decay`."""
    return lambda epoch: 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


def train_translator(config: TranslatorConfig, *, resume: str | Path | None = None, fresh: bool = False) -> Path:
    """Train (or resume) a visible<->infrared CycleGAN; returns the final checkpoint's path.

    resume: a checkpoint to continue from; by default the run folder's own `checkpoints/last.pt`
    when it exists. Only the same run resumes: other settings (`resume_changes`) raise ResumeError.
    fresh: first move the run folder's old files (RUN_FILES) into <output_dir>/previous/<n>/.
    Under torchrun, every rank trains on its share of each epoch and rank 0 writes.
    """
    if fresh and resume:
        raise ValueError(f"resume={resume} and fresh=True contradict each other: choose one")
    check_output_folder(config.output_dir, what="output_dir")
    context = init_distributed(config.runtime.device)
    try:
        return _Trainer(config, context).run(resume, fresh)
    finally:
        shutdown(context)


class _Trainer:
    """Holds one run's networks and tools; `run` is the loop."""

    def __init__(self, config: TranslatorConfig, context: DistributedContext) -> None:
        self.config, self.context = config, context
        self.paths = RunPaths(Path(config.output_dir))
        self.device = context.device
        self.channels_last = use_channels_last(self.device, config.runtime.channels_last)
        seed_everything(config.runtime.seed)
        self.vis, self.ir = _training_images(config, context)
        nce = config.train.lambda_nce > 0
        self.nets = build_nets(config.model, config.image.ir_channels, config.train.nce_layers if nce else None)
        for module in self.nets.modules().values():
            to_memory_format(module.to(self.device), self.channels_last)
        pool_generators = {m: make_generator(config.runtime.seed + offset) for offset, m in enumerate(("vis", "ir"), 1)}
        # PatchNCE's patch locations: a generator of their own, seeded from the run's seed, saved in checkpoints
        nce_generator = make_generator(config.runtime.seed + NCE_SEED_OFFSET) if nce else None
        self.tools = StepTools.build(self.nets, config.train, config.image.ir_channels, pool_generators, nce_generator)
        self.tools.autocast = autocast(self.device, config.runtime.bf16)
        self.tools.distributed = context.enabled
        decay = linear_decay(config.train.epochs, config.train.epochs_decay)
        self.schedulers = {"g": torch.optim.lr_scheduler.LambdaLR(self.tools.optimizer_g, decay),
                           "d": torch.optim.lr_scheduler.LambdaLR(self.tools.optimizer_d, decay)}
        if self.tools.optimizer_heads is not None:  # CUT schedules its optimizer_F as the others
            self.schedulers["heads"] = torch.optim.lr_scheduler.LambdaLR(self.tools.optimizer_heads, decay)
        self.position = Position()
        self.last_checkpoint: Path | None = None
        self.last_checkpoint_step: int | None = None
        self.tensorboard = TensorBoardLog(self.paths.root, enabled=False)  # `run` opens the run's own

    # ------------------------------------------------------------------ the loop

    def run(self, resume: str | Path | None, fresh: bool = False) -> Path:
        if fresh:
            self._set_aside()
        source = Path(resume) if resume else (self.paths.checkpoint if self.paths.checkpoint.exists() else None)
        if source is not None:
            self._restore(source)
        if self.context.enabled:
            broadcast_parameters(list(self.nets.modules().values()))
        if self.context.is_main:
            save_config(self.config, self.paths.root)
            keep_metrics_until(self.paths.metrics, self.position.step)
        # rank 0's events; those of the steps after the checkpoint's are dropped, as their metrics lines are
        writes = self.config.runtime.tensorboard and self.context.is_main
        self.tensorboard = TensorBoardLog(self.paths.root, enabled=writes, purge_step=self.position.step + 1)
        try:
            return self._train()
        finally:
            self.tensorboard.close()

    def _train(self) -> Path:
        train = self.config.train
        steps_per_epoch = self._plan(0).steps
        if steps_per_epoch == 0:
            raise ValueError(f"an epoch has no full batch: {max(len(self.vis), len(self.ir))} images for batch size "
                             f"{train.batch_size} on {self.context.world_size} process(es)")
        total = train.total_epochs * steps_per_epoch
        total = min(total, train.max_steps) if train.max_steps is not None else total
        meter = _LossMeter()
        bar = progress(total=total, initial=self.position.step, desc="vi-translate train", unit="step",
                       disable=None if self.context.is_main else True)
        while self.position.step < total:
            for batch in raise_image_errors(self._loader(self.position.epoch, self.position.step_in_epoch)):
                losses = self._step(batch)
                self.position.step += 1
                self.position.step_in_epoch += 1
                meter.add(losses, train.batch_size * self.context.world_size)
                self._periodic(meter, bar)
                bar.update(1)
                if self.position.step >= total:
                    break
            if self.position.step_in_epoch >= steps_per_epoch:
                self.position.epoch += 1
                self.position.step_in_epoch = 0
                for scheduler in self.schedulers.values():
                    scheduler.step()
        bar.close()
        if self.last_checkpoint_step != self.position.step:
            self._save_checkpoint()
        if self.context.is_main:
            self._save_pictures()
        barrier(self.context)
        return self.paths.checkpoint

    def _step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        vis = to_memory_format(batch["vis"].to(self.device, non_blocking=True), self.channels_last)
        ir = to_memory_format(batch["ir"].to(self.device, non_blocking=True), self.channels_last)
        try:
            return train_step(self.nets, vis, ir, self.tools)
        except NonFiniteLoss as error:
            saved = self.last_checkpoint or "none (no checkpoint was written before)"
            raise TrainingDiverged(f"training diverged at step {self.position.step + 1}: {error}. The last good "
                                   f"checkpoint is {saved}; nothing was saved after the divergence. Lower "
                                   "train.lr or check the data.") from None

    def _periodic(self, meter: _LossMeter, bar) -> None:
        step, train = self.position.step, self.config.train
        if step % train.log_every == 0:
            line = meter.flush(step=step, epoch=self.position.epoch, lr=self.tools.optimizer_g.param_groups[0]["lr"])
            bar.set_postfix({k: f"{v:.3g}" for k, v in line.items() if k in ("G_vis2ir", "D_ir", "cycle_vis",
                                                                                "images_per_s")})
            if self.context.is_main:
                with open(self.paths.metrics, "a") as handle:
                    handle.write(json.dumps(line) + "\n")
                self.tensorboard.scalars(step, tensorboard_scalars(line))
        if step % train.sample_every == 0 and self.context.is_main:
            self._save_pictures()
        if step % train.checkpoint_every == 0:
            self._save_checkpoint()

    # ------------------------------------------------------------------ data

    def _plan(self, epoch: int):
        return plan_epoch(len(self.vis), len(self.ir), epoch=epoch, seed=self.config.runtime.seed,
                          batch_size=self.config.train.batch_size, rank=self.context.rank,
                          world_size=self.context.world_size)

    def _loader(self, epoch: int, from_step: int) -> DataLoader:
        workers = self.config.runtime.workers
        return DataLoader(UnpairedImages(self.vis, self.ir, self.config.image), batch_size=self.config.train.batch_size,
                          sampler=self._plan(epoch).from_step(from_step), num_workers=workers,
                          worker_init_fn=seed_worker, generator=make_generator(0), drop_last=True,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    # ------------------------------------------------------------------ checkpoints and pictures

    def _state(self) -> dict:
        """nets (with PatchNCE also heads_vis2ir, heads_ir2vis), optimizer_g, optimizer_d (and optimizer_heads),
        schedulers (g, d, and heads), pools, nce_generator (with PatchNCE: the patch generator's state), rng,
        position."""
        state = {"nets": {name: module.state_dict() for name, module in self.nets.modules().items()}}
        state |= {name: optimizer.state_dict() for name, optimizer in self.tools.optimizers().items()}
        state |= {"schedulers": {name: s.state_dict() for name, s in self.schedulers.items()},
                  "pools": {name: pool.state_dict() for name, pool in self.tools.pools.items()}}
        if self.tools.nce_generator is not None:
            state["nce_generator"] = self.tools.nce_generator.get_state()
        return state | {"rng": capture_rng_state(), "position": asdict(self.position)}

    def _save_checkpoint(self) -> None:
        if self.context.is_main:
            self.tensorboard.flush()  # every event of the steps the checkpoint holds is on disk before it
            save_translator_checkpoint(self.paths.checkpoint, config=config_to_dict(self.config),
                                       step=self.position.step, state=self._state())
            logger.info("step %d: checkpoint %s", self.position.step, self.paths.checkpoint)
        self.last_checkpoint, self.last_checkpoint_step = self.paths.checkpoint, self.position.step
        barrier(self.context)

    def _set_aside(self) -> None:
        """Start afresh: rank 0 moves the old run's files aside."""
        if self.context.is_main:
            moved = set_aside(self.paths.root, RUN_FILES)
            if moved is not None:
                logger.info("starting afresh: the previous run's files are in %s", moved)
        barrier(self.context)

    def _restore(self, path: Path) -> None:
        checkpoint, saved_config = read_translator_checkpoint(path)
        position = Position(**require_state(checkpoint, "position", path))
        check_resume(resume_changes(config_to_dict(saved_config), config_to_dict(self.config), position.epoch),
                     checkpoint=path, run_dir=self.paths.root, run_files=RUN_FILES, safe=RESUME_SAFE,
                     rule=RESUME_RULE)
        load_nets_state(self.nets, checkpoint, path)
        for name, optimizer in self.tools.optimizers().items():
            optimizer.load_state_dict(require_state(checkpoint, name, path))
        schedulers = require_state(checkpoint, "schedulers", path)
        for name, scheduler in self.schedulers.items():
            if name not in schedulers:
                raise CheckpointError(f"{path}: checkpoint has no state for the {name!r} scheduler")
            scheduler.load_state_dict(schedulers[name])
        for name, state in require_state(checkpoint, "pools", path).items():
            self.tools.pools[name].load_state_dict(state)
        if self.tools.nce_generator is not None:
            self.tools.nce_generator.set_state(require_state(checkpoint, "nce_generator", path))
        restore_rng_state(require_state(checkpoint, "rng", path))
        self.position = position
        self.last_checkpoint, self.last_checkpoint_step = path, self.position.step
        logger.info("resumed from %s at step %d (epoch %d)", path, self.position.step, self.position.epoch)

    def _save_pictures(self) -> None:
        vis, ir = _sample_images(self.vis, self.ir, self.config)
        with torch.no_grad(), self.tools.autocast:
            translations = translate_both_ways(self.nets, vis.to(self.device), ir.to(self.device)).detached()
        grid = save_translation_grid(self.paths.sample(self.position.step),
                                     [vis, translations.fake_ir, translations.rec_vis, ir, translations.fake_vis,
                                      translations.rec_ir])
        self.tensorboard.image(self.position.step, SAMPLES_TAG, grid)  # the PNG as written
        if self.paths.metrics.exists():
            plot_loss_curves(self.paths.metrics, self.paths.curves)


def resume_changes(saved: dict, current: dict, epoch: int) -> list[Change]:
    """The changes (`reid.resume.changed_settings`) that forbid resuming a checkpoint saved under the config dict
    `saved` in epoch `epoch` (0-based) under `current`: keys outside RESUME_SAFE, and the schedule's epochs
    (SCHEDULE_KEYS) when the learning-rate factor of an epoch up to `epoch` would change (more epochs before the
    decay are fine while it has not begun)."""
    old, new = (linear_decay(config["train"]["epochs"], config["train"]["epochs_decay"]) for config in (saved, current))
    same_so_far = all(old(begun) == new(begun) for begun in range(epoch + 1))
    return changed_settings(saved, current, safe=RESUME_SAFE | (SCHEDULE_KEYS if same_so_far else set()))


def tensorboard_scalars(line: dict) -> dict[str, float]:
    """The TensorBoard scalars of a metrics.jsonl line (the step is the axis): loss/<term> for every loss term,
    lr, images_per_s and epoch."""
    plain = ("lr", "images_per_s", "epoch")
    return {key if key in plain else f"loss/{key}": value for key, value in line.items() if key != "step"}


class _LossMeter:
    """Averages loss terms between log lines and measures images per second."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, losses: dict[str, float], images: int) -> None:
        for name, value in losses.items():
            self.sums[name] += value
        self.count += 1
        self.images += images

    def flush(self, **context) -> dict:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        line = dict(context) | {name: total / max(self.count, 1) for name, total in self.sums.items()}
        line["images_per_s"] = self.images / elapsed
        self.__init__()
        return line


def _training_images(config: TranslatorConfig, context: DistributedContext) -> tuple[list[Record], list[Record]]:
    """The dataset's visible and infrared training images (rank 0 generates a synthetic tree first)."""
    if context.is_main:
        dataset = open_dataset(config.data)
    barrier(context)
    if not context.is_main:
        dataset = open_dataset(config.data)
    vis = [record for record in dataset.train if record.modality == "vis"]
    ir = [record for record in dataset.train if record.modality == "ir"]
    return vis, ir


def _sample_images(vis: list[Record], ir: list[Record], config: TranslatorConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of images per modality, evenly spread over the training set, resized to the crop size."""
    count = config.train.num_samples

    def pick(records: list[Record], modality: str) -> torch.Tensor:
        chosen = [records[i * len(records) // count] for i in range(min(count, len(records)))]
        mode = image_mode(modality, config.image.ir_channels)
        return torch.stack([to_model_range(resize_for_model(read_image(r.path, mode), config.image)) for r in chosen])

    return pick(vis, "vis"), pick(ir, "ir")


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop the metrics lines of the steps after `step` (the checkpoint's; 0 without one), atomically: a run killed
    before its next checkpoint logged them, and the resumed run logs them again."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.endswith("\n") and json.loads(line)["step"] <= step]
    write_text_atomically(path, "".join(kept))
