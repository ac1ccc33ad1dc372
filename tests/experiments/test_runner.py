"""The experiment runner on a tiny config: all stages, reuse, --from, a changed section."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import experiments.runner as runner
from experiments.__main__ import main as experiments_main
from experiments.config import ExperimentConfig
from reid.config import load_config
from reid.data import make_synthetic_sysu


def tiny_experiment(tmp_path: Path, data_root: Path) -> Path:
    config = {
        "data": {"name": "synthetic", "root": str(data_root)},
        "translator": {"image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
                       "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
                       "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "max_steps": 2, "sample_every": 2}},
        "translate": {"batch_size": 8},
        "reid": {"model": {"arch": "tiny", "height": 32, "width": 16},
                 "augment": {"pad": 2},
                 "cluster": {"k1": 6, "k2": 2, "min_samples": 2},
                 "train": {"epochs": 1, "iterations": 2, "num_identities": 2, "num_instances": 2},
                 "eval": {"every": 1, "trials": 1, "batch_size": 16}},
        "strategies": ["joint", "per_modality_hungarian"],
        "runtime": {"device": "cpu", "workers": 0, "log_level": "WARNING"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    return root


def count_stage_calls(monkeypatch) -> dict[str, int]:
    calls: dict[str, int] = {}
    for name in ("stage_translator", "stage_translate", "stage_reid", "stage_evaluate"):
        original = getattr(runner, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(runner, name, counted)
    return calls


def test_run_writes_results_and_pictures_then_reuses_stages(tmp_path, data_root, monkeypatch, capsys):
    config = tiny_experiment(tmp_path, data_root)
    calls = count_stage_calls(monkeypatch)
    assert experiments_main(["run", str(config)]) == 0
    assert calls == {"stage_translator": 1, "stage_translate": 1, "stage_reid": 2, "stage_evaluate": 2}
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["strategies"] == ["joint", "per_modality_hungarian"]
    assert {row["strategy"] for row in results["results"]} == {"joint", "per_modality_hungarian"}
    assert all(0 <= row["mAP"] <= 1 for row in results["results"])
    for picture in ("epochs", "translation", "tsne", "retrieval"):
        assert (run / "report" / f"{picture}.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "| joint | all-single |" in printed and "## Per epoch" in printed
    assert (run / "config.yaml").exists() and (run / "translated" / "manifest.jsonl").exists()

    calls.clear()
    assert experiments_main(["run", str(config)]) == 0  # everything finished: reused
    assert experiments_main(["run", str(config), "runtime.log_level=ERROR"]) == 0  # cannot change results
    assert calls == {}
    assert experiments_main(["run", str(config), "--from", "reid"]) == 0
    assert calls == {"stage_reid": 2, "stage_evaluate": 2}
    calls.clear()
    assert experiments_main(["run", str(config), "reid.cluster.eps=0.5"]) == 0  # the ReID recipe changed
    assert calls == {"stage_reid": 2, "stage_evaluate": 2}


def test_variants_and_config_errors(tmp_path, data_root, capsys):
    config = load_config(ExperimentConfig, tiny_experiment(tmp_path, data_root))
    assert runner.reid_config(config, "channel_augment", tmp_path).augment.channel_augment
    assert runner.reid_config(config, "none", tmp_path).translated is None
    assert runner.reid_config(config, "joint", tmp_path).translated == str(tmp_path / "translated")
    assert experiments_main(["run", str(tmp_path / "experiment.yaml"), "strategies=[jointt]"]) == 2
    assert "strategies: unknown ['jointt']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown stage"):
        runner.run_experiment(config, from_stage="nothing")
