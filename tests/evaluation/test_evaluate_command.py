"""`vireid evaluate` end to end on a tiny synthetic dataset with the tiny model."""
from __future__ import annotations

import json

import pytest
import torch

import reid.commands.evaluate as evaluate_command
from reid.cli import main as vireid_main
from reid.config import ModelConfig
from reid.data import make_synthetic_sysu
from reid.models import build_model, load_model_checkpoint, save_model_checkpoint

TINY = ModelConfig(arch="tiny", height=32, width=16)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_sysu(root, num_ids=10, seed=1, images_per_camera=2, height=32, width=16, test_fraction=0.5)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run") / "model.pt"
    return save_model_checkpoint(path, build_model("tiny"), TINY, config={"note": "test"}, step=3)


def test_model_checkpoint_round_trip(checkpoint):
    model, config = load_model_checkpoint(checkpoint)
    assert config == TINY and not model.training
    torch.manual_seed(0)
    reference = build_model("tiny").eval()  # the same initial weights as the checkpoint's
    images, is_ir = torch.randn(2, 3, 32, 16), torch.tensor([False, True])
    torch.testing.assert_close(model(images, is_ir)["features"], reference(images, is_ir)["features"])


def test_evaluate_checkpoint_then_saved_features(root, checkpoint, tmp_path, capsys):
    out, features = tmp_path / "eval.json", tmp_path / "test_features.pt"
    assert vireid_main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--root", str(root),
                        "--trials", "2", "--workers", "0", "--save-features", str(features), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for setting in ("all-single", "all-multi", "indoor-single", "indoor-multi"):
        assert f"| {setting} |" in printed
    report = json.loads(out.read_text())
    assert report["dataset"] == "sysu" and report["options"]["trials"] == 2
    assert len(report["settings"]["all-single"]["trials"]) == 2
    mean = report["settings"]["all-single"]["mean"]
    assert 0.0 < mean["R20"] <= 1.0 and 0.0 < mean["mAP"] <= 1.0

    again = tmp_path / "again.json"
    assert vireid_main(["evaluate", "--features", str(features), "--dataset", "synthetic", "--root", str(root),
                        "--trials", "2", "--out", str(again)]) == 0
    assert json.loads(again.read_text())["settings"] == report["settings"]


def test_evaluate_default_output_beside_the_checkpoint_and_rerank(root, checkpoint, capsys):
    assert vireid_main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--root", str(root),
                        "--trials", "1", "--workers", "0", "--settings", "indoor-single", "--rerank",
                        "--rerank-k1", "5", "--rerank-k2", "2"]) == 0
    report = json.loads((checkpoint.parent / "eval_synthetic.json").read_text())
    assert report["rerank"] is True and list(report["settings"]) == ["indoor-single"]


def test_mismatched_checkpoint_names_file_and_keys(root, tmp_path, capsys):
    wrong = save_model_checkpoint(tmp_path / "wrong.pt", build_model("tiny"), ModelConfig(arch="resnet18"))
    assert vireid_main(["evaluate", "--checkpoint", str(wrong), "--dataset", "synthetic", "--root", str(root)]) == 2
    error = capsys.readouterr().err
    assert "wrong.pt" in error and "does not match the model" in error and "missing keys" in error
    bad_config = save_model_checkpoint(tmp_path / "bad.pt", build_model("tiny"), TINY, config={})
    payload = torch.load(bad_config, weights_only=True)
    payload["config"]["model"]["archh"] = "tiny"
    torch.save(payload, bad_config)
    assert vireid_main(["evaluate", "--checkpoint", str(bad_config), "--dataset", "synthetic", "--root", str(root)]) == 2
    assert "unknown config key 'archh'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_trials_below_one_are_refused_at_parsing(value, root, tmp_path, capsys):
    out = tmp_path / "eval.json"
    with pytest.raises(SystemExit) as info:
        vireid_main(["evaluate", "--features", "f.pt", "--dataset", "synthetic", "--root", str(root),
                     "--trials", value, "--out", str(out)])
    assert info.value.code == 2 and "argument --trials" in capsys.readouterr().err
    assert not out.exists()


class NanResult:
    """What the protocol returns when a metric is undefined (e.g. no query has a match)."""

    def as_dict(self) -> dict:
        return {"dataset": "sysu", "settings": {"all-single": {"mean": {"mAP": float("nan"), "R1": 0.5}}}}

    def table(self) -> str:
        return "| all-single | nan |"


def test_undefined_metrics_are_written_as_null(root, checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluate_command, "evaluate_protocol", lambda *args, **kwargs: NanResult())
    out = tmp_path / "eval.json"
    assert vireid_main(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--root", str(root),
                        "--out", str(out)]) == 0
    report = json.loads(out.read_text(), parse_constant=pytest.fail)  # fails on a bare NaN
    assert report["settings"]["all-single"]["mean"] == {"mAP": None, "R1": 0.5}


def test_save_features_without_a_checkpoint_is_refused(root, tmp_path, capsys):
    saved = tmp_path / "copy.pt"
    assert vireid_main(["evaluate", "--features", str(tmp_path / "f.pt"), "--dataset", "synthetic", "--root",
                        str(root), "--save-features", str(saved)]) == 2
    assert "--save-features" in capsys.readouterr().err and not saved.exists()
