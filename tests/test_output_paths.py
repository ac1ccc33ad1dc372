"""Output paths are checked before any work (`reid.files.check_output_file` / `check_output_folder`): a folder where a
file is expected, a file where a folder is expected, a path under a file, an unwritable folder, and an unrelated
file that would be overwritten are each one line `PROG: error: ...` naming the path, exit status 2, and the
command's expensive work never starts."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from PIL import Image

import reid.commands.evaluate as evaluate_command
import reid.commands.extract as extract_command
import reid.commands.search as search_command
import reid.files
import reid.pretrain
import reid.train
import vi_translate.evaluate as translator_evaluate
import vi_translate.sample as sample_module
import vi_translate.train
from reid.cli import main as vireid_main
from reid.config import ModelConfig
from reid.features import FeatureSet, is_features_file
from reid.files import OutputPathError, check_output_file, check_output_folder
from reid.models import build_model, save_model_checkpoint
from vi_translate.cli import main as translate_main

TINY = ModelConfig(arch="tiny", height=32, width=16)


# ------------------------------------------------------------------------------------------------ the helper

def test_folder_output_refuses_a_file_and_a_path_under_a_file(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match=f"^--out {blocker} is a file, not a folder"):
        check_output_folder(blocker)
    with pytest.raises(OutputPathError, match=f"^output_dir {blocker / 'run'}: {blocker} is a file, not a folder"):
        check_output_folder(blocker / "run" / "", what="output_dir")
    assert check_output_folder(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert check_output_folder(tmp_path) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing created


def test_file_output_refuses_a_folder_a_path_under_a_file_and_an_unrelated_file(tmp_path):
    with pytest.raises(OutputPathError, match=f"^--out {tmp_path} is a folder, not a file"):
        check_output_file(tmp_path)
    with pytest.raises(OutputPathError, match="is a folder, not a file"):
        check_output_file(f"{tmp_path / 'not_yet'}/")  # a trailing separator names a folder
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(OutputPathError, match=f"{notes / 'f.pt'}: {notes} is a file, not a folder"):
        check_output_file(notes / "f.pt")
    with pytest.raises(OutputPathError, match=f"^--out {notes} already exists and is not a file this command wrote: "
                                              r"refusing to overwrite it \(.*--overwrite"):
        check_output_file(notes)
    assert check_output_file(notes, overwrite=True) == notes
    assert check_output_file(notes, ours=lambda path: path.read_text() == "mine") == notes
    assert check_output_file(tmp_path / "a" / "b" / "f.pt") == tmp_path / "a" / "b" / "f.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and notes.read_text() == "mine"


def test_an_unwritable_folder_is_named(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(reid.files.os, "access",
                        lambda path, mode: Path(path) != locked and real_access(path, mode))  # root may write anywhere
    with pytest.raises(OutputPathError, match=f"--out {locked / 'sub' / 'f.pt'}: no permission to write in {locked}$"):
        check_output_file(locked / "sub" / "f.pt")
    with pytest.raises(OutputPathError, match=f"--out {locked}: no permission to write in {locked}$"):
        check_output_folder(locked)


def test_features_files_are_told_from_other_files(tmp_path):
    features = FeatureSet([], torch.zeros(0, 4)).save(tmp_path / "f.pt", root=tmp_path)
    other = tmp_path / "model.pt"
    save_model_checkpoint(other, build_model("tiny"), TINY)
    (tmp_path / "notes.txt").write_text("hello")
    assert is_features_file(features)
    assert not is_features_file(other) and not is_features_file(tmp_path / "notes.txt")
    assert not is_features_file(tmp_path / "absent.pt")


# ------------------------------------------------------------------------------------------------ the commands

@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """A folder of three small images in an identity folder, a tiny ReID checkpoint and a translator config."""
    base = tmp_path_factory.mktemp("inputs")
    for n in range(3):
        path = base / "images" / "0001" / f"{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 32), (40 * n, 90, 200 - 40 * n)).save(path)
    torch.manual_seed(0)
    checkpoint = save_model_checkpoint(base / "model.pt", build_model("tiny"), TINY)
    return {"images": base / "images", "checkpoint": checkpoint}


def never(name: str) -> Callable:
    def called(*args, **kwargs):
        raise AssertionError(f"{name} ran although the output path is bad")
    return called


@pytest.fixture
def no_work(monkeypatch):
    """Every command's expensive first step fails the test when reached."""
    for module, name in ((search_command, "load_model_checkpoint"), (extract_command, "load_model_checkpoint"),
                         (evaluate_command, "load_dataset"), (sample_module, "Translator"),
                         (translator_evaluate, "build_extractor"), (reid.train, "init_distributed"),
                         (vi_translate.train, "init_distributed"), (reid.pretrain, "_Pretraining")):
        monkeypatch.setattr(module, name, never(f"{module.__name__}.{name}"))


def config_file(tmp_path: Path, output_dir: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"output_dir": str(output_dir)}))
    return str(path)


@dataclass(frozen=True)
class BadOutput:
    main: Callable
    argv: Callable[[Path, dict, Path], list[str]]  # (tmp_path, inputs, bad path) -> arguments
    fragment: str  # in the one error line, after "PROG: error: "; "{out}" stands for the bad path


def blocker_file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("not the command's")
    return path


def search(tmp, inputs, out):
    return ["search", "--checkpoint", str(inputs["checkpoint"]), "--query", str(inputs["images"]), "--gallery",
            str(inputs["images"]), "--out", str(out), "--workers", "0"]


def extract(tmp, inputs, out):
    return ["extract", "--checkpoint", str(inputs["checkpoint"]), "--images", str(inputs["images"]), "--modality",
            "vis", "--out", str(out), "--workers", "0"]


def sample(tmp, inputs, out):
    return ["sample", "--checkpoint", str(tmp / "translator.pt"), "--input", str(inputs["images"]), "--direction",
            "vis2ir", "--out", str(out), "--device", "cpu"]


def translator_eval(tmp, inputs, out):
    return ["evaluate", "--checkpoint", str(tmp / "translator.pt"), "--dataset", "folder", "--root", str(tmp),
            "--device", "cpu", "--out", str(out)]


def reid_eval(tmp, inputs, out):
    return ["evaluate", "--checkpoint", str(inputs["checkpoint"]), "--dataset", "synthetic", "--root", str(tmp),
            "--out", str(out)]


def train(command):
    return lambda tmp, inputs, out: [command, config_file(tmp, out)]


IS_A_FILE = "{out} is a file, not a folder"
BAD_OUTPUTS = {
    "vireid search --out FILE": BadOutput(vireid_main, search, IS_A_FILE),
    "vireid extract --out FOLDER": BadOutput(vireid_main, extract, "{out} is a folder, not a file"),
    "vireid extract --out unrelated file": BadOutput(vireid_main, extract,
                                                     "{out} already exists and is not a features file"),
    "vireid evaluate --out FOLDER": BadOutput(vireid_main, reid_eval, "{out} is a folder, not a file"),
    "vi-translate sample --out FILE": BadOutput(translate_main, sample, IS_A_FILE),
    "vi-translate evaluate --out FILE": BadOutput(translate_main, translator_eval, IS_A_FILE),
    "vireid train output_dir=FILE": BadOutput(vireid_main, train("train"), "output_dir {out} is a file"),
    "vireid pretrain output_dir=FILE": BadOutput(vireid_main, train("pretrain"), "output_dir {out} is a file"),
    "vi-translate train output_dir=FILE": BadOutput(translate_main, train("train"), "output_dir {out} is a file"),
    "vireid cluster --out FILE": BadOutput(
        vireid_main, lambda tmp, inputs, out: ["cluster", "--features", str(tmp / "f.pt"), "--out", str(out)],
        IS_A_FILE),
}


@pytest.mark.parametrize("row", BAD_OUTPUTS.values(), ids=BAD_OUTPUTS.keys())
def test_a_bad_output_path_is_one_line_before_any_work(row, inputs, tmp_path, no_work, capsys):
    out = tmp_path if "is a folder" in row.fragment else blocker_file(tmp_path)
    prog = "vireid" if row.main is vireid_main else "vi-translate"
    assert row.main(row.argv(tmp_path, inputs, out)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith(f"{prog}:")]
    assert errors == [lines[-1]] and lines[-1].startswith(f"{prog}: error: ")
    assert row.fragment.format(out=out) in lines[-1]
    assert "Errno" not in lines[-1]


def test_a_path_under_a_file_is_named_not_errno(inputs, tmp_path, no_work, capsys):
    blocker = blocker_file(tmp_path)
    assert vireid_main(extract(tmp_path, inputs, blocker / "f.pt")) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"vireid: error: --out {blocker / 'f.pt'}: {blocker} is a file, not a folder, so nothing can be " \
                    "written under it"


def test_extract_replaces_its_own_features_file_and_others_only_with_overwrite(inputs, tmp_path, capsys):
    out = tmp_path / "features.pt"
    assert vireid_main(extract(tmp_path, inputs, out)) == 0
    first = out.read_bytes()
    assert vireid_main(extract(tmp_path, inputs, out)) == 0  # an earlier features file: replaced
    assert is_features_file(out) and out.read_bytes() == first
    notes = blocker_file(tmp_path)
    assert vireid_main(extract(tmp_path, inputs, notes)) == 2
    assert "refusing to overwrite it" in capsys.readouterr().err and notes.read_text() == "not the command's"
    assert vireid_main([*extract(tmp_path, inputs, notes), "--overwrite"]) == 0
    assert is_features_file(notes)


def test_every_new_option_has_help(capsys):
    with pytest.raises(SystemExit):
        vireid_main(["extract", "--help"])
    assert "--overwrite" in capsys.readouterr().out
