"""TensorBoard event files beside a run's metrics, an optional extra (`pip install -e '.[tensorboard]'` in the
repository).

    log = TensorBoardLog(run_dir, enabled=config.runtime.tensorboard and context.is_main, purge_step=first_step)
    log.scalars(step, {"loss/vis": 0.8, "lr": 3.5e-4})
    log.image(step, "samples", run_dir / "samples" / "step_0000500.png")
    log.flush()  # before each checkpoint
    log.close()

The events go to RUN_DIR/tensorboard/ (`tensorboard --logdir runs`) through torch.utils.tensorboard. Without the
tensorboard package, or with `enabled` false, every method does nothing and no folder is made; a missing package
costs one INFO line per log, saying how to turn it on.

Resuming: `purge_step` is the first step a resumed run trains again (the checkpoint's step + 1). Before writing,
the log copies the events of the old files in the folder at steps below it into its own new file and deletes the
old files, so the folder never holds two points of one tag at one step (the steps a killed run logged after its
last checkpoint are dropped, as metrics.jsonl drops their lines); the writer's purge_step also tells TensorBoard
to hide events at or after it should an old file outlive a kill during that copy. A tag's steps only increase:
a point at or before the tag's last step is not written. `flush()` before each checkpoint puts every point of
the steps the checkpoint holds on disk, so a kill loses none of them.
"""
from __future__ import annotations

import importlib
import logging
import numbers
import os
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)
TENSORBOARD_DIR = "tensorboard"  # RUN_DIR/tensorboard/
INSTALL_HINT = "pip install -e '.[tensorboard]' in the repository (or pip install tensorboard)"
EVENT_FILES = "events.out.tfevents.*"
EVAL_COUNTS = frozenset({"num_trials"})  # numbers of a ReID record's "eval" settings that are no metric


def tensorboard_modules() -> tuple[Any, Any] | None:
    """(torch.utils.tensorboard.SummaryWriter, tensorboard's LegacyEventFileLoader: a file's events as written,
    not migrated to TensorBoard's newer forms), or None when the tensorboard package cannot be imported. Not
    cached: a test may hide the package (sys.modules["tensorboard"] = None)."""
    try:
        importlib.import_module("tensorboard")
        writer = importlib.import_module("torch.utils.tensorboard")
        loader = importlib.import_module("tensorboard.backend.event_processing.event_file_loader")
    except ImportError:
        return None
    return writer.SummaryWriter, loader.LegacyEventFileLoader


def tensorboard_available() -> bool:
    """Whether the tensorboard package (and torch.utils.tensorboard) can be imported."""
    return tensorboard_modules() is not None


class TensorBoardLog:
    """RUN_DIR/tensorboard/ event files, or nothing (see the module docstring).

    enabled: whether this process writes (e.g. `runtime.tensorboard and context.is_main`); purge_step: the first
    step this run (re)trains; the old files' events at or after it are dropped, and None keeps the old files as
    they are.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, purge_step: int | None = None, *,
                 flush_secs: int = 30) -> None:
        self.directory = Path(run_dir) / TENSORBOARD_DIR
        self._writer = None
        self._last_step: dict[str, int] = {}  # tag -> the last step written
        if not enabled:
            return
        modules = tensorboard_modules()
        if modules is None:
            logger.info("TensorBoard event files are off: the tensorboard package is not installed; to turn "
                        "them on: %s", INSTALL_HINT)
            return
        summary_writer, event_file_loader = modules
        old = sorted(self.directory.glob(EVENT_FILES)) if purge_step is not None else []
        self.directory.mkdir(parents=True, exist_ok=True)
        self._writer = summary_writer(str(self.directory), purge_step=purge_step, flush_secs=flush_secs)
        if old:
            self._keep_before(old, purge_step, event_file_loader)

    @property
    def active(self) -> bool:
        """Whether this log writes event files."""
        return self._writer is not None

    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        """One point per tag at `step`; values that are not real numbers (None, strings, bools) are skipped."""
        if self._writer is None:
            return
        for tag, value in values.items():
            if is_number(value) and self._is_new(tag, step):
                self._writer.add_scalar(tag, float(value), global_step=int(step))

    def image(self, step: int, tag: str, image: Any, dataformats: str = "HWC") -> None:
        """An image at `step`: a path to an image file, a PIL image, or an array / tensor laid out as
        `dataformats` (uint8, or floats in [0, 1]). A path is read only when the log is active."""
        if self._writer is None or not self._is_new(tag, step):
            return
        if isinstance(image, (str, os.PathLike)):
            from PIL import Image

            with Image.open(image) as opened:
                image = opened.convert("RGB")
        if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
            import numpy as np

            image, dataformats = np.asarray(image.convert("RGB")), "HWC"
        self._writer.add_image(tag, image, global_step=int(step), dataformats=dataformats)

    def flush(self) -> None:
        """Write the pending events to disk (call it before each checkpoint)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _is_new(self, tag: str, step: int) -> bool:
        """Whether `step` lies after the tag's last point (then it becomes the last)."""
        if tag in self._last_step and step <= self._last_step[tag]:
            logger.debug("tensorboard: %s already has a point at step %d or later; not written again", tag, step)
            return False
        self._last_step[tag] = int(step)
        return True

    def _keep_before(self, old: list[Path], purge_step: int, event_file_loader) -> None:
        """Copy the summaries of the `old` event files at steps below `purge_step` into this log's file (each tag's
        steps increasing), put them on disk, then delete the old files."""
        file_writer = self._writer._get_file_writer()
        for path in old:
            for event in event_file_loader(str(path)).Load():  # a record cut short by a kill ends the file
                if not event.HasField("summary") or event.step >= purge_step:
                    continue
                values = [value for value in event.summary.value if self._is_new(value.tag, event.step)]
                if values:
                    kept = type(event)(step=event.step, summary=type(event.summary)(value=values))
                    file_writer.add_event(kept, walltime=event.wall_time)
        self._writer.flush()
        for path in old:
            path.unlink(missing_ok=True)


def is_number(value: Any) -> bool:
    """A real number (int, float, numpy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def reid_epoch_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one ReID metrics.jsonl record (`reid.train`): loss/<term> for every loss_<term>,
    lr, cluster/<name> for every number of the cluster quality, method/<note> for every number among the method's
    notes, eval/<setting>/<metric> for every metric (R1, R5, R10, R20, mAP, mINP) of every evaluated setting;
    anything else (epoch, stage, seconds, the trial count, values that are not numbers) is left out. The step axis
    is record["epoch"]."""
    scalars = {f"loss/{key[len('loss_'):]}": float(value) for key, value in record.items()
               if key.startswith("loss_") and is_number(value)}
    if is_number(record.get("lr")):
        scalars["lr"] = float(record["lr"])
    for group in ("cluster", "method"):
        section = record.get(group)
        if isinstance(section, Mapping):
            scalars |= {f"{group}/{key}": float(value) for key, value in section.items() if is_number(value)}
    evaluation = record.get("eval")
    if isinstance(evaluation, Mapping):
        for setting, metrics in evaluation.items():
            if isinstance(metrics, Mapping):
                scalars |= {f"eval/{setting}/{metric}": float(value) for metric, value in metrics.items()
                            if is_number(value) and metric not in EVAL_COUNTS}
    return scalars


__all__ = ["TENSORBOARD_DIR", "TensorBoardLog", "reid_epoch_scalars", "tensorboard_available", "is_number"]
