"""Resume only the same run: compare a checkpoint's saved config with the config of the rerun.

A rerun in a run folder that holds a checkpoint continues that run. When a setting that changes results differs
(a learning rate, the seed, a begun stage, ...), resuming would mix two runs and the rewritten config.yaml would
misstate the first part, so `check_resume` refuses, listing the changed keys (dotted, old -> new) and the ways out:
a new output_dir, or starting afresh (`set_aside` moves the old run's files away first). Configs are compared as
plain dicts (`config_to_dict`, or a checkpoint's "config" entry); a key in one and not the other shows as
"(absent)".
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .config import ConfigError

ABSENT = "(absent)"  # the value shown for a key that one of the two configs lacks
PREVIOUS = "previous"  # <run>/previous/<n>/: where starting afresh moves an old run's files
STAGES_KEY = "train.stages"
METHOD_KEY = "method"

# ReID settings a resumed run may change: none of them changes the weights (runtime.tensorboard: TensorBoard event
# files or none). Not here, on purpose: runtime.device (other numerics), runtime.workers (the loader workers draw the
# CPU augmentations, so their number changes the draws), eval.batch_size (the batch size of the clustering features
# too); train.stages and translated follow `reid_resume_changes`'s rule.
REID_SAFE = frozenset({"runtime.log_level", "runtime.tensorboard", "eval.every", "eval.trials", "eval.settings",
                       "train.max_epochs", "output_dir"})
# the files and folders of a ReID run folder that belong to one run (what starting afresh moves aside)
REID_RUN_FILES = ("checkpoints", "metrics.jsonl", "eval", "config.yaml", "tensorboard")
REID_RULE = (", the epochs of the stage it is in (not below those trained in it), the stages it has not begun, the "
             "method where the stages begun keep their rules, and translated while no begun stage reads the views")

Change = tuple[str, Any, Any]  # (dotted key, saved value, current value)


class ResumeError(ConfigError):
    """A checkpoint was written under other settings than the rerun's; the message lists the changed keys."""


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict as {dotted key: value}; lists and other non-dict values are leaves, an empty dict too."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{dotted}.")
        else:
            flat[dotted] = value
    return flat


def is_safe(key: str, safe: Iterable[str]) -> bool:
    """Whether `key` is one of `safe` or lies under one of them (a section named in `safe`)."""
    return any(key == name or key.startswith(f"{name}.") for name in safe)


def changed_settings(saved: dict, current: dict, *, safe: Iterable[str] = ()) -> list[Change]:
    """(key, old, new) for every dotted key whose value differs between two config dicts, in key order, except the
    keys in (or under) `safe`; a key missing on one side has the value ABSENT there."""
    old, new = flatten(saved), flatten(current)
    keys = sorted(set(old) | set(new))
    return [(key, old.get(key, ABSENT), new.get(key, ABSENT)) for key in keys
            if old.get(key, ABSENT) != new.get(key, ABSENT) and not is_safe(key, safe)]


def trained_stages(stages: dict[str, dict], epoch: int) -> list[tuple[str, dict, int]]:
    """(name, stage, epochs trained in it) of the stages a run has begun after `epoch` finished epochs, in order:
    stages: name -> stage dict (`train.stages`, run in order); those of 0 epochs are skipped, as training does."""
    begun, start = [], 0
    for name, stage in stages.items():
        if stage["epochs"] > 0 and start < epoch:
            begun.append((name, stage, min(stage["epochs"], epoch - start)))
        start += stage["epochs"]
    return begun


def stage_changes(saved: dict[str, dict], current: dict[str, dict], epoch: int) -> list[Change]:
    """The changes to the stages already begun after `epoch` finished epochs (keys train.stages.<name>.<field>).

    The begun stages must come first in `current` (stages of 0 epochs aside), in the same order and equal, except
    that the last begun one's `epochs` may change, down to the epochs already trained in it. Stages not begun may
    be changed, added or removed.
    """
    begun = trained_stages(saved, epoch)
    ahead = [(name, stage) for name, stage in current.items() if stage["epochs"] > 0][:len(begun)]
    if [name for name, _, _ in begun] != [name for name, _ in ahead]:
        return [(f"{STAGES_KEY} (begun, in order)", [name for name, _, _ in begun], [name for name, _ in ahead])]
    changes = []
    for (name, old, trained), (_, new) in zip(begun, ahead):
        last = name == begun[-1][0]
        prefix = f"{STAGES_KEY}.{name}."
        changes += [(prefix + key, before, after)
                    for key, before, after in changed_settings(old, new, safe={"epochs"} if last else ())]
        if last and new["epochs"] < trained:
            changes.append((f"{prefix}epochs", old["epochs"], new["epochs"]))
    return changes


def reid_resume_changes(saved: dict, current: dict, epoch: int, *, reads_views: Callable[[dict, int], bool],
                        stage_rules: Callable[[dict, int], Any]) -> list[Change]:
    """The changes that forbid resuming a ReID checkpoint after `epoch` finished epochs under `current`: keys
    outside REID_SAFE, the begun stages (`stage_changes`), the rules the method gives each begun stage, and
    `translated` only when a begun stage reads the views. Both callables take a config dict and a stage's index in
    its train.stages: reads_views -> whether that stage clusters or trains on the views, stage_rules -> the rules it
    trains with (`reid.methods.Method.stage_rules`), so the method itself may change where those stay equal."""
    old_stages, new_stages = (config.get("train", {}).get("stages", {}) for config in (saved, current))
    positions = {name: index for index, name in enumerate(old_stages)}
    begun = [(name, positions[name]) for name, _, _ in trained_stages(old_stages, epoch)]
    views_read = any(reads_views(saved, index) for _, index in begun)
    safe = REID_SAFE | {STAGES_KEY, METHOD_KEY} | (set() if views_read else {"translated"})
    rules = [(f"{METHOD_KEY} (the rules of stage {name})", stage_rules(saved, index), stage_rules(current, index))
             for name, index in begun]
    return (changed_settings(saved, current, safe=safe) + stage_changes(old_stages, new_stages, epoch)
            + [(key, old, new) for key, old, new in rules if old != new])


def check_resume(changes: list[Change], *, checkpoint: Path, run_dir: Path, run_files: Sequence[str],
                 safe: Iterable[str], rule: str = "") -> None:
    """Raise ResumeError listing `changes` (old -> new), what a resume may change (`safe`, then `rule`) and the
    ways out, when there are any changes."""
    if not changes:
        return
    lines = "\n".join(f"  {key}: {_show(old)} -> {_show(new)}" for key, old, new in changes)
    raise ResumeError(
        f"{checkpoint} was trained with other settings, so it was not resumed (that would mix two runs):\n{lines}\n"
        f"A resumed run may change only {', '.join(sorted(safe))}{rule}. Either go back to the saved values, set "
        f"output_dir to a new folder, or start afresh with --fresh (fresh=True), which moves {', '.join(run_files)} "
        f"of {run_dir} into {run_dir / PREVIOUS}/<n>/.")


def set_aside(run_dir: Path, names: Sequence[str]) -> Path | None:
    """Move the files and folders `names` of a run folder that exist into run_dir/previous/<n>/ (n: 1, 2, ... the
    next free number), so a fresh run starts without them and nothing is lost; returns that folder, or None when
    none of them exists."""
    present = [run_dir / name for name in names if (run_dir / name).exists()]
    if not present:
        return None
    numbers = [int(p.name) for p in (run_dir / PREVIOUS).glob("*") if p.name.isdigit()]
    target = run_dir / PREVIOUS / str(max(numbers, default=0) + 1)
    target.mkdir(parents=True)
    for path in present:
        shutil.move(str(path), str(target / path.name))
    return target


def _show(value: Any) -> str:
    """A config value as written in YAML overrides (null, true, 0.001, [a, b]); ABSENT as is."""
    return value if value is ABSENT else json.dumps(value, default=str)
