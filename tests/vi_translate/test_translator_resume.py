"""The translator resumes only the same run: `resume_changes` and `train_translator` refusing, resuming under safe
settings or a longer constant phase to the weights of an uninterrupted run, and starting afresh."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reid.checkpoint import load_checkpoint
from reid.config import config_to_dict
from reid.resume import ResumeError
from vi_translate.config import TranslatorConfig
from vi_translate.train import resume_changes, train_translator

from test_train import assert_same_weights
from translator_helpers import build_translator_config, tiny_translator_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# tiny_translator_config: 20 visible images, batch 2: 10 steps an epoch; epochs 1 then epochs_decay 1


def run(data_root: Path, out: Path, fresh: bool = False, **train) -> Path:
    return train_translator(build_translator_config(tiny_translator_config(data_root, out, **train)), fresh=fresh)


def steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def schedule(epochs: int, epochs_decay: int, **train) -> dict:
    return config_to_dict(TranslatorConfig()) | {"train": config_to_dict(TranslatorConfig().train)
                                                 | {"epochs": epochs, "epochs_decay": epochs_decay, **train}}


def test_resume_changes_allow_the_schedule_to_change_only_where_no_begun_epoch_is_affected():
    assert resume_changes(schedule(1, 1), schedule(1, 1), 1) == []
    assert resume_changes(schedule(1, 1), schedule(2, 1), 0) == []  # a longer constant phase, decay not begun
    assert resume_changes(schedule(2, 1), schedule(1, 1), 0) == []  # a shorter one that still covers epoch 0
    assert resume_changes(schedule(1, 1), schedule(1, 3), 0) == []  # another decay, not begun
    assert resume_changes(schedule(1, 1), schedule(2, 1), 1) == [("train.epochs", 1, 2)]  # epoch 1 decayed at 1/2
    assert resume_changes(schedule(1, 1), schedule(1, 3), 1) == [("train.epochs_decay", 1, 3)]
    assert resume_changes(schedule(1, 1), schedule(1, 1, lr=1e-3, max_steps=5, log_every=2), 0) == \
        [("train.lr", 2e-4, 1e-3)]


def test_a_changed_learning_rate_is_refused_and_nothing_is_rewritten(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    run(tiny_dataset, out, max_steps=3)
    before = {name: (out / name).read_bytes() for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt")}
    with pytest.raises(ResumeError, match=r"train\.lr: 0\.0002 -> 0\.0004"):
        run(tiny_dataset, out, max_steps=6, lr=4e-4)
    assert {name: (out / name).read_bytes() for name in before} == before


def test_safe_settings_and_a_longer_constant_phase_resume_to_the_uninterrupted_weights(tiny_dataset, tmp_path):
    """Stop at step 5 (epoch 0), resume with other workers, intervals and a second constant epoch: the weights of
    a run trained straight with two constant epochs."""
    straight = run(tiny_dataset, tmp_path / "straight", max_steps=12, epochs=2)
    run(tiny_dataset, tmp_path / "split", max_steps=5)
    config = tiny_translator_config(tiny_dataset, tmp_path / "split", max_steps=12, epochs=2, log_every=2,
                                    sample_every=4, checkpoint_every=6, num_samples=1)
    config["runtime"] |= {"workers": 1, "log_level": "WARNING"}
    resumed = train_translator(build_translator_config(config))
    assert steps(tmp_path / "split") == [1, 2, 3, 4, 5, 6, 8, 10, 12]  # resumed at step 6
    assert_same_weights(straight, resumed)


def test_a_longer_constant_phase_after_the_decay_began_is_refused(tiny_dataset, tmp_path):
    run(tiny_dataset, tmp_path / "run", max_steps=12)  # epoch 1 trains at half the learning rate
    with pytest.raises(ResumeError, match=r"train\.epochs: 1 -> 2"):
        run(tiny_dataset, tmp_path / "run", max_steps=14, epochs=2)


def test_fresh_moves_the_old_run_aside_and_starts_at_step_one(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    run(tiny_dataset, out, max_steps=3)
    old = (out / "checkpoints" / "last.pt").read_bytes()
    checkpoint = run(tiny_dataset, out, fresh=True, max_steps=2, lr=4e-4)
    assert steps(out) == [1, 2] and load_checkpoint(checkpoint)["config"]["train"]["lr"] == 4e-4
    assert (out / "previous" / "1" / "checkpoints" / "last.pt").read_bytes() == old
    assert steps(out / "previous" / "1") == [1, 2, 3]
    with pytest.raises(ValueError, match="resume=.* and fresh=True"):
        train_translator(build_translator_config(tiny_translator_config(tiny_dataset, out)), resume=checkpoint,
                         fresh=True)
