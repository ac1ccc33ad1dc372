from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reid.cli import main as vireid_main
from vi_translate.cli import main as translate_main


def test_vireid_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        vireid_main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "data" in out and "--log-level" in out


def test_vireid_data_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        vireid_main(["data", "synth", "--help"])
    out = capsys.readouterr().out
    for option in ("--root", "--num-ids", "--seed", "--images-per-camera", "--height", "--width"):
        assert option in out


def test_synth_then_info_round_trip(tmp_path, capsys):
    root = tmp_path / "synthetic"
    assert vireid_main(["data", "synth", "--root", str(root), "--num-ids", "6", "--images-per-camera", "2",
                        "--height", "32", "--width", "16"]) == 0
    capsys.readouterr()
    assert vireid_main(["data", "info", "--dataset", "synthetic", "--root", str(root)]) == 0
    report = json.loads(capsys.readouterr().out)
    train = report["train"]
    assert train["images"]["vis"] > 0 and train["images"]["ir"] > 0
    assert set(train["cameras"]) == {"1", "2", "3", "4", "5", "6"}
    query = report["test"]["all-single"]["query"]
    assert query["images"]["vis"] == 0 and query["images"]["ir"] > 0
    assert set(report["test"]["indoor-single"]["gallery"]["cameras"]) <= {"1", "2"}
    assert report["test"]["all-multi"]["gallery"]["images"]["vis"] > report["test"]["all-single"]["gallery"]["images"]["vis"]


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert vireid_main(["data", "info", "--dataset", "sysu", "--root", str(tmp_path / "absent")]) == 2
    assert str(tmp_path / "absent") in capsys.readouterr().err


def test_vi_translate_help_lists_its_commands(capsys):
    with pytest.raises(SystemExit) as info:
        translate_main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "sample", "translate", "evaluate"):
        assert command in out


@pytest.mark.parametrize("command", ["vireid", "vi-translate"])
def test_console_scripts_are_installed(command):
    executable = shutil.which(command, path=str(Path(sys.executable).parent)) or shutil.which(command)
    assert executable is not None, f"{command} is not installed: run `make test`, which installs the toolkit"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage" in result.stdout
