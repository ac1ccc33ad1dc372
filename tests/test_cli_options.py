"""The three command lines: the --log-level rule, overrides anywhere, options refused at parsing or at config
time, Ctrl-C, translate's exit statuses, and a packaging that never installs two faiss builds."""
from __future__ import annotations

import configparser
import json
import logging
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import experiments.cli as experiments_cli
import reid.commands.data as data_command
import reid.commands.train as train_command
import vi_translate.cli as translate_cli
import vi_translate.translate as translate_command
from experiments.__main__ import main as experiments_main
from reid.cli import main as vireid_main
from reid.cli_support import finite_or_none, write_json
from reid.config import ConfigError, load_config
from reid.pseudo_labels import cluster_features
from reid.train_config import ClusterConfig, ReIDConfig
from vi_translate.cli import main as translate_main
from vi_translate.config import TranslatorConfig
from vi_translate.train import train_translator

REPO = Path(__file__).resolve().parents[1]
RESUME_HINT = "interrupted; rerun the same command to resume"


def reid_level() -> str:
    return logging.getLevelName(logging.getLogger("reid").level)


def write_config(tmp_path: Path, log_level: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"runtime": {"log_level": log_level}, "output_dir": str(tmp_path / "run")}))
    return path


# --------------------------------------------------------------------------- fakes of the long-running work


def fake_train_reid(record: dict):
    def train_reid(config, fresh=False):
        record.update(level=reid_level(), config=config, fresh=fresh)
        return "last.pt"
    return train_reid


def fake_train_translator(record: dict):
    def train_translator(config, resume=None, fresh=False):
        record.update(level=reid_level(), config=config, resume=resume, fresh=fresh)
        return "last.pt"
    return train_translator


def fake_run_experiment(record: dict):
    def run_experiment(config, variants=None, from_stage=None):
        record.update(level=reid_level(), config=config)
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        Path(config.output_dir, "results.md").write_text("| table |")
        return {}
    return run_experiment


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def run_interrupted(main, argv: list[str]) -> int:
    """main(argv) with its work interrupted; a KeyboardInterrupt that escapes fails the test (not the session)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the command line's main")


# --------------------------------------------------------------------------- 1. --log-level


@pytest.fixture
def fakes(monkeypatch) -> dict:
    """Every CLI's long-running work replaced by a recorder of the log level it ran at."""
    record: dict = {}
    monkeypatch.setattr(train_command, "train_reid", fake_train_reid(record))
    monkeypatch.setattr(translate_cli, "train_translator", fake_train_translator(record))
    monkeypatch.setattr(experiments_cli, "run_experiment", fake_run_experiment(record))
    return record


CONFIG_COMMANDS = {"vireid": (vireid_main, "train"), "vi-translate": (translate_main, "train"),
                   "experiments": (experiments_main, "run")}


@pytest.mark.parametrize("cli", CONFIG_COMMANDS)
@pytest.mark.parametrize("flag, expected", [(None, "ERROR"), ("DEBUG", "DEBUG"), ("WARNING", "WARNING")])
def test_explicit_log_level_wins_over_the_config(cli, flag, expected, fakes, tmp_path, capsys):
    main, command = CONFIG_COMMANDS[cli]
    options = ["--log-level", flag] if flag else []
    assert main([*options, command, str(write_config(tmp_path, "ERROR"))]) == 0
    assert fakes["level"] == expected


def test_commands_without_a_config_log_at_info_unless_told(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(data_command, "_run_data_info", lambda args: seen.append(reid_level()) or (0, ""))
    assert vireid_main(["data", "info", "--dataset", "sysu", "--root", "x"]) == 0
    assert vireid_main(["--log-level", "ERROR", "data", "info", "--dataset", "sysu", "--root", "x"]) == 0
    assert seen == ["INFO", "ERROR"]


@pytest.mark.parametrize("main", [vireid_main, translate_main, experiments_main])
def test_help_states_the_log_level_rule(main, capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "wins over the config's runtime.log_level" in " ".join(capsys.readouterr().out.split())


# --------------------------------------------------------------------------- 2. cluster.num_clusters


def test_kmeans_pseudo_labels_get_num_clusters():
    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(3, 8) * 10
    features = (centres.repeat_interleave(6, dim=0) + 0.1 * torch.randn(18, 8, generator=generator))
    config = ClusterConfig(method="kmeans", num_clusters=3)
    labels = cluster_features(features, config, np.array(["vis"] * 18))
    assert len(set(labels.tolist())) == 3
    assert all(len(set(labels[i * 6:(i + 1) * 6].tolist())) == 1 for i in range(3))  # one label per blob


@pytest.mark.parametrize("method", ["kmeans", "spectral"])
def test_kmeans_and_spectral_without_num_clusters_fail_at_config_time(method, tmp_path, capsys):
    with pytest.raises(ConfigError, match="cluster.num_clusters"):
        load_config(ReIDConfig, None, [f"cluster.method={method}"])
    config = load_config(ReIDConfig, None, [f"cluster.method={method}", "cluster.num_clusters=5"])
    assert config.cluster.num_clusters == 5
    assert vireid_main(["train", str(write_config(tmp_path, "INFO")), f"cluster.method={method}"]) == 2
    assert "cluster.num_clusters" in capsys.readouterr().err


@pytest.mark.parametrize("override, key", [("cluster.method=kmean", "cluster.method"),
                                           ("cluster.num_clusters=0", "cluster.num_clusters"),
                                           ("cluster.eps=1.5", "cluster.eps"), ("cluster.k1=0", "cluster.k1")])
def test_cluster_values_out_of_range_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(ReIDConfig, None, [override])


def test_cluster_command_needs_num_clusters_for_kmeans(tmp_path, capsys):
    assert vireid_main(["cluster", "--features", str(tmp_path / "absent.pt"), "--method", "kmeans",
                        "--out", str(tmp_path / "out")]) == 2
    assert "--num-clusters" in capsys.readouterr().err


# --------------------------------------------------------------------------- 3. packaging


def test_no_install_gets_two_faiss_builds():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")

    def faiss_builds(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip().startswith("faiss")]

    assert faiss_builds(setup["options"]["install_requires"]) == []
    extras = {name: faiss_builds(text) for name, text in setup["options.extras_require"].items()}
    assert extras.pop("cpu") == ["faiss-cpu"] and extras.pop("gpu") == ["faiss-gpu-cu12"]
    assert all(builds == [] for builds in extras.values()), extras  # [gpu,test] must not pull faiss-cpu


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("faiss, installed, removed", [("cpu", "cpu", "faiss-gpu-cu12"), ("gpu", "gpu", "faiss-cpu")])
def test_make_test_installs_one_faiss_build(faiss, installed, removed, tmp_path):
    plan = subprocess.run(["make", "-n", "-C", str(REPO), "test", f"FAISS={faiss}", f"VENV={tmp_path / 'venv'}"],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    uninstall = plan.index(f"pip uninstall --disable-pip-version-check -y -qq {removed}")
    assert uninstall < plan.index(f"-e '.[{installed},test]'")


# --------------------------------------------------------------------------- 4. overrides anywhere


def test_vi_translate_train_takes_overrides_after_options(fakes, tmp_path, capsys):
    config = write_config(tmp_path, "INFO")
    assert translate_main(["train", str(config), "train.max_steps=7", "--resume", "ck.pt", "train.lr=0.001"]) == 0
    assert fakes["resume"] == "ck.pt"
    assert fakes["config"].train.max_steps == 7 and fakes["config"].train.lr == 0.001


def test_vireid_train_takes_overrides_after_options(fakes, tmp_path, capsys):
    assert vireid_main(["train", str(write_config(tmp_path, "INFO")), "train.iterations=3", "--fresh",
                        "cluster.eps=0.4"]) == 0
    assert fakes["config"].train.iterations == 3 and fakes["config"].cluster.eps == 0.4 and fakes["fresh"]


def test_experiments_take_overrides_between_options(fakes, tmp_path, capsys):
    config = write_config(tmp_path, "INFO")
    assert experiments_main(["run", str(config), "seeds=1", "--seeds", "2", "chance_draws=3", "--from", "reid"]) == 0
    assert fakes["config"].seeds == 2 and fakes["config"].chance_draws == 3


@pytest.mark.parametrize("argv, unrecognized", [
    (["evaluate", "--features", "f.pt", "--dataset", "sysu", "--root", "r", "a.b=1"], "a.b=1"),  # takes none
    (["train", "c.yaml", "--bogus", "a.b=1"], "--bogus"),
])
def test_unrecognized_words_are_refused(argv, unrecognized, capsys):
    with pytest.raises(SystemExit) as info:
        vireid_main(argv)
    assert info.value.code == 2
    assert f"unrecognized arguments: {unrecognized}" in capsys.readouterr().err


# ------------------------------------------------------------------ 5. JSON (evaluate's --trials: tests/evaluation)


def test_written_json_has_no_bare_nan(tmp_path):
    data = {"mAP": float("nan"), "cmc": [0.5, float("inf")], "trials": ({"R1": -math.inf},), "n": 3}
    text = write_json(tmp_path / "out" / "r.json", data).read_text()
    assert json.loads(text, parse_constant=pytest.fail) == {"mAP": None, "cmc": [0.5, None],
                                                            "trials": [{"R1": None}], "n": 3}
    assert finite_or_none(0.25) == 0.25


# --------------------------------------------------------------------------- 6. Ctrl-C


@pytest.mark.parametrize("cli", CONFIG_COMMANDS)
def test_ctrl_c_in_a_resuming_command_exits_130_with_one_line(cli, fakes, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(train_command, "train_reid", interrupt)
    monkeypatch.setattr(translate_cli, "train_translator", interrupt)
    monkeypatch.setattr(experiments_cli, "run_experiment", interrupt)
    main, command = CONFIG_COMMANDS[cli]
    assert run_interrupted(main, [command, str(write_config(tmp_path, "INFO"))]) == 130
    assert capsys.readouterr().err == f"{cli}: {RESUME_HINT}\n"


@pytest.mark.parametrize("cli", ["vireid", "vi-translate"])
def test_fresh_starts_afresh_and_ctrl_c_then_says_how_to_resume(cli, fakes, monkeypatch, tmp_path, capsys):
    main, command = CONFIG_COMMANDS[cli]
    config = str(write_config(tmp_path, "INFO"))
    assert main([command, config, "--fresh"]) == 0 and fakes["fresh"] is True
    assert main([command, config]) == 0 and fakes["fresh"] is False
    monkeypatch.setattr(train_command, "train_reid", interrupt)
    monkeypatch.setattr(translate_cli, "train_translator", interrupt)
    capsys.readouterr()
    assert run_interrupted(main, [command, config, "--fresh"]) == 130
    assert capsys.readouterr().err == f"{cli}: interrupted; rerun without --fresh to resume\n"


def test_vi_translate_train_refuses_fresh_with_resume(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        translate_main(["train", str(write_config(tmp_path, "INFO")), "--fresh", "--resume", "ck.pt"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_ctrl_c_in_translate_and_synth_hint_at_resuming(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(translate_command, "run", interrupt)
    argv = ["translate", "--checkpoint", "c.pt", "--dataset", "sysu", "--root", "r", "--out", "o"]
    assert run_interrupted(translate_main, argv) == 130
    assert capsys.readouterr().err == f"vi-translate: {RESUME_HINT}\n"
    monkeypatch.setattr(data_command, "make_synthetic_sysu", interrupt)
    assert run_interrupted(vireid_main, ["data", "synth", "--root", str(tmp_path / "s")]) == 130
    assert capsys.readouterr().err == f"vireid: {RESUME_HINT}\n"


def test_ctrl_c_in_a_command_that_does_not_resume(monkeypatch, capsys):
    monkeypatch.setattr(data_command, "load_dataset", interrupt)
    assert run_interrupted(vireid_main, ["data", "info", "--dataset", "sysu", "--root", "r"]) == 130
    assert capsys.readouterr().err == "vireid: interrupted\n"


# --------------------------------------------------------------------------- 7. translate's exit statuses


@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory, one_torch_thread) -> tuple[Path, Path]:
    """(checkpoint of a translator trained 1 step, a folder of images with one corrupt file)."""
    from reid.data import make_synthetic_sysu

    base = tmp_path_factory.mktemp("translate")
    make_synthetic_sysu(base / "data", num_ids=4, seed=0, images_per_camera=1, height=32, width=16)
    config = load_config(TranslatorConfig, None, [
        "data.name=synthetic", f"data.root={base / 'data'}", "image.load_height=36", "image.load_width=18",
        "image.crop_height=32", "image.crop_width=16", "model.ngf=4", "model.ndf=4", "model.n_blocks=1",
        "model.n_layers_d=2", "train.batch_size=2", "train.max_steps=1", "train.num_samples=1",
        "runtime.device=cpu", "runtime.workers=0", f"output_dir={base / 'run'}"])
    checkpoint = train_translator(config)
    images = base / "images"
    images.mkdir()
    shutil.copy(next((base / "data").rglob("*.jpg")), images / "good.jpg")
    (images / "corrupt.jpg").write_bytes(b"not a jpeg")
    return checkpoint, images


def translate_folder(checkpoint: Path, images: Path, out: Path) -> int:
    return translate_main(["--log-level", "ERROR", "translate", "--checkpoint", str(checkpoint), "--dataset", "folder",
                           "--modality", "vis", "--root", str(images), "--out", str(out), "--device", "cpu",
                           "--workers", "0"])


def test_translate_into_a_regular_file_could_not_run(tiny_translator, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("a file, not a folder")
    assert translate_folder(*tiny_translator, out) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("vi-translate: error:") and str(out) in error


def test_translate_with_a_full_disk_could_not_run(tiny_translator, monkeypatch, tmp_path, capsys):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(translate_command, "translate_records", full_disk)
    assert translate_folder(*tiny_translator, tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "No space left on device" in error and str(tmp_path / "out") in error


def test_translate_with_a_failed_image_exits_1(tiny_translator, tmp_path, capsys):
    assert translate_folder(*tiny_translator, tmp_path / "out") == 1
    assert "corrupt.jpg" in capsys.readouterr().out
