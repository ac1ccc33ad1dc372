"""A rerun resumes only the same run: the config comparison (`reid.resume`) and `train_reid` refusing, resuming
and starting afresh on a tiny dataset (the translator's side: tests/vi_translate/test_translator_resume.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from experiments.runner import copy_run, first_stage_run
from reid.checkpoint import load_checkpoint
from reid.config import config_to_dict, load_config
from reid.resume import (ABSENT, ResumeError, changed_settings, check_resume, reid_resume_changes, set_aside,
                         stage_changes)
from reid.methods import phase_of
from reid.train import method_of, train_reid
from reid.train_config import ReIDConfig

from test_reid_train import build, data, history, tiny_reid_config  # noqa: F401 - `data` is a fixture


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reid_dict(*overrides: str) -> dict:
    """The default ReID config (method joint; stages intra: 50 epochs, cross: 50 epochs) as a dict."""
    return config_to_dict(load_config(ReIDConfig, None, list(overrides)))


def reid_changes(saved: dict, current: dict, epoch: int) -> list[tuple]:
    return reid_resume_changes(saved, current, epoch,
                               reads_views=lambda config, index: method_of(config).uses_views(phase_of(index), True),
                               stage_rules=lambda config, index: method_of(config).stage_rules(phase_of(index)))


# ------------------------------------------------------------------------------------------ the comparison


def test_changed_settings_lists_dotted_keys_with_old_and_new_values_except_the_safe_ones():
    saved = {"train": {"lr": 1e-3, "stages": {"a": {"epochs": 2}}}, "eval": {"every": 5, "settings": ["x"]},
             "runtime": {"workers": 2}, "output_dir": "a"}
    current = {"train": {"lr": 2e-3, "stages": {"a": {"epochs": 2}, "b": {"epochs": 1}}},
               "eval": {"every": 1, "settings": ["x", "y"]}, "runtime": {"workers": 2}, "output_dir": "b"}
    assert changed_settings(saved, current) == [
        ("eval.every", 5, 1), ("eval.settings", ["x"], ["x", "y"]), ("output_dir", "a", "b"),
        ("train.lr", 1e-3, 2e-3), ("train.stages.b.epochs", ABSENT, 1)]
    assert changed_settings(saved, current, safe={"eval", "output_dir", "train.stages"}) == [("train.lr", 1e-3, 2e-3)]
    assert changed_settings(saved, saved) == []


def test_the_error_names_each_key_with_both_values_and_the_ways_out(tmp_path):
    with pytest.raises(ResumeError) as error:
        check_resume([("train.stages.intra.lr", 3.5e-4, 1e-4), ("translated", None, "runs/t")],
                     checkpoint=tmp_path / "last.pt", run_dir=tmp_path, run_files=("checkpoints", "metrics.jsonl"),
                     safe={"eval.every"})
    message = str(error.value)
    for part in ("last.pt", "train.stages.intra.lr: 0.00035 -> 0.0001", 'translated: null -> "runs/t"', "eval.every",
                 "output_dir", "--fresh", "checkpoints, metrics.jsonl", str(tmp_path / "previous")):
        assert part in message, part
    check_resume([], checkpoint=tmp_path / "last.pt", run_dir=tmp_path, run_files=(), safe=())  # nothing changed


def test_reid_settings_that_change_results_are_refused_and_the_safe_ones_pass():
    saved = reid_dict()
    assert reid_changes(saved, reid_dict(), 3) == []
    safe = reid_dict("runtime.log_level=DEBUG", "eval.every=1", "eval.trials=2", "eval.settings=[all-single]",
                     "train.max_epochs=10", "output_dir=elsewhere")
    assert reid_changes(saved, safe, 3) == []
    refused = reid_dict("runtime.seed=1", "runtime.workers=0", "runtime.device=cpu", "eval.batch_size=8",
                        "train.iterations=7")
    assert [key for key, _, _ in reid_changes(saved, refused, 3)] == [
        "eval.batch_size", "runtime.device", "runtime.seed", "runtime.workers", "train.iterations"]


def test_begun_stages_must_stay_equal_and_the_current_stage_may_only_grow_past_what_it_trained():
    saved = reid_dict("train.stages.intra.epochs=4")["train"]["stages"]

    def changes(*overrides: str, epoch: int = 3) -> list[tuple]:
        return stage_changes(saved, reid_dict("train.stages.intra.epochs=4", *overrides)["train"]["stages"], epoch)

    assert changes() == []
    assert changes("train.stages.intra.lr=1e-4") == [("train.stages.intra.lr", 3.5e-4, 1e-4)]
    assert changes("train.stages.intra.epochs=9") == []  # more epochs in the stage it is in
    assert changes("train.stages.intra.epochs=3") == []  # fewer, but not below the 3 trained
    assert changes("train.stages.intra.epochs=2") == [("train.stages.intra.epochs", 4, 2)]
    assert changes("train.stages.cross.lr=1e-4", "train.stages.cross.gamma=0.5", "train.stages.more.epochs=2",
                   "train.stages.cross.epochs=1") == []  # a stage not begun may change, and stages be added
    # after 5 epochs the cross stage is begun and intra is finished: its epochs are fixed
    assert changes("train.stages.cross.lr=1e-4", epoch=5) == [("train.stages.cross.lr", 3.5e-4, 1e-4)]
    assert changes("train.stages.intra.epochs=5", epoch=5) == [("train.stages.intra.epochs", 4, 5)]
    # a stage put before the begun one is refused, one of 0 epochs is not (it is skipped)
    reordered = stage_changes(saved, {"warm": {**saved["intra"], "epochs": 1}, **saved}, 3)
    assert reordered == [("train.stages (begun, in order)", ["intra"], ["warm"])]
    skipped = {"warm": {**saved["intra"], "epochs": 0}, **saved}
    assert stage_changes(saved, skipped, 3) == [] and stage_changes(skipped, saved, 3) == []


def test_translated_may_change_only_while_no_begun_stage_reads_the_views():
    saved = reid_dict("train.stages.intra.epochs=2")
    views = reid_dict("train.stages.intra.epochs=2", "translated=runs/translated")
    assert reid_changes(saved, views, 2) == []  # only intra (per-modality) is begun
    assert reid_changes(saved, views, 3) == [("translated", None, "runs/translated")]  # joint's cross stage is begun
    oracle = reid_dict("train.stages.intra.epochs=2", "method.name=oracle")  # the upper bound: views in stage 2
    with_views = reid_dict("train.stages.intra.epochs=2", "method.name=oracle", "translated=runs/translated")
    assert reid_changes(oracle, with_views, 2) == []
    assert reid_changes(oracle, with_views, 3) == [("translated", None, "runs/translated")]


def test_the_method_may_change_only_where_the_begun_stages_keep_their_rules():
    """joint's, ADCA's and PGM's first stage is cluster-contrast's, so a run begun under one continues under the
    others while only that stage is begun; PCLHD's first stage is its own; once the cross stage is begun (or a
    method option it reads changed) the method is fixed."""
    saved = reid_dict("train.stages.intra.epochs=2")
    for method in ("cluster_contrast", "adca", "pgm"):
        assert reid_changes(saved, reid_dict("train.stages.intra.epochs=2", f"method.name={method}"), 2) == []
    rules = "method (the rules of stage intra)"
    assert [key for key, _, _ in reid_changes(saved, reid_dict("train.stages.intra.epochs=2", "method.name=pclhd"),
                                              2)] == [rules]
    assert [key for key, _, _ in reid_changes(saved, reid_dict("train.stages.intra.epochs=2", "method.name=adca"),
                                              3)] == ["method (the rules of stage cross)"]
    assert reid_changes(saved, reid_dict("train.stages.intra.epochs=2", "method.options.view_weight=0"), 2) == []
    assert reid_changes(saved, reid_dict("train.stages.intra.epochs=2", "method.options.view_weight=0"), 3) != []


def test_set_aside_moves_the_run_files_into_the_next_numbered_folder(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_text("old")
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    (tmp_path / "mine.yaml").write_text("kept")
    assert set_aside(tmp_path, ("checkpoints", "metrics.jsonl", "eval")) == tmp_path / "previous" / "1"
    assert (tmp_path / "previous" / "1" / "checkpoints" / "last.pt").read_text() == "old"
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()
    assert (tmp_path / "mine.yaml").read_text() == "kept"  # not a run file
    assert set_aside(tmp_path, ("checkpoints", "metrics.jsonl")) is None  # nothing left to move
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert set_aside(tmp_path, ("metrics.jsonl",)) == tmp_path / "previous" / "2"


# ------------------------------------------------------------------------------------------ train_reid


def quick(config: dict, **eval_options) -> dict:
    """A tiny config that evaluates one setting once (the last epoch is always evaluated)."""
    config["eval"] |= {"trials": 1, "settings": ["all-single"], **eval_options}
    return config


@pytest.fixture(scope="module")
def one_epoch(data, tmp_path_factory) -> Path:
    """A run folder after the first of the tiny config's two epochs (intra, then cross)."""
    root, translated = data
    out = tmp_path_factory.mktemp("resume") / "run"
    train_reid(build(quick(tiny_reid_config(root, translated, out, max_epochs=1)), out.parent / "c.yaml"))
    return out


def rerun(data, one_epoch: Path, tmp_path: Path, fresh: bool = False, **changes) -> tuple[Path, Path]:
    """Copy the one-epoch run folder to tmp_path/run and train it under the tiny config changed by `changes`
    (tiny_reid_config's keywords: intra, cross, train keys); returns (run folder, checkpoint)."""
    out = tmp_path / "run"
    shutil.copytree(one_epoch, out)
    return out, train_reid(build(quick(tiny_reid_config(*data, out, **changes)), tmp_path / "rerun.yaml"), fresh=fresh)


def test_an_unchanged_rerun_resumes(data, one_epoch, tmp_path):
    out, checkpoint = rerun(data, one_epoch, tmp_path, max_epochs=1)  # nothing left to train
    assert [line["epoch"] for line in history(out)] == [1]
    assert checkpoint.read_bytes() == (one_epoch / "checkpoints" / "last.pt").read_bytes()


def test_a_changed_learning_rate_of_a_begun_stage_is_refused_and_nothing_is_rewritten(data, one_epoch, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ResumeError, match=r"train\.stages\.intra\.lr: 0\.001 -> 0\.002"):
        rerun(data, one_epoch, tmp_path, intra={"lr": 2e-3})
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt"):
        assert (out / name).read_bytes() == (one_epoch / name).read_bytes(), name


def test_safe_settings_more_epochs_in_the_current_stage_and_changed_later_stages_resume(data, one_epoch, tmp_path):
    out, _ = rerun(data, one_epoch, tmp_path, intra={"epochs": 2}, cross={"lr": 5e-3}, method="adca", max_epochs=2)
    changed = quick(tiny_reid_config(*data, out, intra={"epochs": 2}, method="pgm"), every=1)
    changed["runtime"]["log_level"] = "WARNING"
    train_reid(build(changed, tmp_path / "safe.yaml"))  # log level, eval.every, max_epochs, cross.lr, method changed
    lines = history(out)
    assert [(line["epoch"], line["stage"]) for line in lines] == [(1, "intra"), (2, "intra"), (3, "cross")]
    assert lines[2]["lr"] == pytest.approx(1e-3)  # this rerun's cross stage, not the previous rerun's 5e-3
    assert "loss_cross" in lines[2]  # trained by PGM's cross-stage rules
    saved = load_checkpoint(out / "checkpoints" / "last.pt")["config"]
    assert saved["method"]["name"] == "pgm" and saved["runtime"]["log_level"] == "WARNING"


def test_the_runners_first_stage_copy_resumes_under_the_whole_runs_config(data, tmp_path):
    whole = build(quick(tiny_reid_config(*data, tmp_path / "whole")), tmp_path / "whole.yaml")
    first, _ = first_stage_run(whole, tmp_path, "data", "translate")
    assert first.translated is None and list(first.train.stages) == ["intra"]  # the case at hand
    train_reid(first)
    copy_run(Path(first.output_dir), Path(whole.output_dir))
    train_reid(whole)
    assert [line["stage"] for line in history(tmp_path / "whole")] == ["intra", "cross"]


def test_fresh_moves_the_old_run_aside_and_starts_from_the_first_epoch(data, one_epoch, tmp_path):
    out, checkpoint = rerun(data, one_epoch, tmp_path, fresh=True, intra={"lr": 2e-3}, max_epochs=1)
    assert [line["lr"] for line in history(out)] == pytest.approx([2e-3])  # one epoch: a fresh run
    assert load_checkpoint(checkpoint)["config"]["train"]["stages"]["intra"]["lr"] == 2e-3
    old = out / "previous" / "1"
    for name in ("checkpoints/last.pt", "metrics.jsonl", "config.yaml", "eval/epoch_001.json"):
        assert (old / name).read_bytes() == (one_epoch / name).read_bytes(), name


def test_a_checkpoint_saved_before_a_key_existed_compares_at_its_default(tmp_path):
    """Keys the schema gained since a checkpoint was written (e.g. cluster.num_clusters) count as their defaults;
    the saved stages stay as saved (a first-stage checkpoint gains no default `cross` stage)."""
    from reid.config import config_to_dict
    from reid.train import with_defaults
    from reid.train_config import ReIDConfig

    saved = config_to_dict(ReIDConfig())
    del saved["cluster"]["num_clusters"]
    saved["train"]["stages"] = {"intra": {"epochs": 2, "lr": 1e-3}}
    filled = with_defaults(saved, tmp_path / "last.pt")
    assert filled["cluster"]["num_clusters"] is None
    assert list(filled["train"]["stages"]) == ["intra"]
    assert filled["train"]["stages"]["intra"]["lr"] == 1e-3 and filled["train"]["stages"]["intra"]["gamma"] == 0.1
    assert filled["method"] == {"name": "joint", "options": {
        "view_weight": 1.0, "cross_view_weight": 1.0, "mixed_k1": None, "mixed_k2": None, "balanced": False}}
    # and the resume check applies it: a run saved without the key continues under today's config
    from reid.train import check_same_run

    config = ReIDConfig(output_dir=str(tmp_path))
    without_key = config_to_dict(config)
    del without_key["cluster"]["num_clusters"]
    check_same_run(without_key, config, 1, tmp_path / "last.pt")


def test_a_checkpoint_of_an_older_toolkit_with_keys_gone_since_is_refused_naming_the_key(tmp_path):
    """A config saved when stages still had `labels` (before methods) cannot be resumed: the error names the key
    and the way out."""
    from reid.train import check_same_run

    config = ReIDConfig(output_dir=str(tmp_path))
    saved = config_to_dict(config)
    saved["train"]["stages"]["cross"]["labels"] = "mixed_modal"
    with pytest.raises(ResumeError, match=r"train\.stages\.cross\.labels(.|\n)*--fresh"):
        check_same_run(saved, config, 1, tmp_path / "last.pt")
