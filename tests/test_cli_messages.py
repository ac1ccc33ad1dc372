"""What the command-line tools say and write for the cases a new user met: eval.trials=0, the TensorBoard install
hint, `data info` on unlabelled footage, `vi-translate sample` on nested folders, a checkpoint that is a folder,
features files that do not match their folder, --log-level after the command, skipped files, huge images, and
the size and captions of `vireid search`'s HTML and PNG."""
from __future__ import annotations

import json
import logging
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import experiments.cli as experiments_cli
import reid.commands.train as train_command
import vi_translate.cli as translate_cli
from experiments.__main__ import main as experiments_main
from reid.checkpoint import CheckpointError, load_checkpoint
from reid.cli import main as vireid_main
from reid.config import ConfigError, ModelConfig, config_to_dict, load_config
from reid.data import ImageReadError, read_image
from reid.data.folder import walk_images
from reid.models import build_model, save_model_checkpoint
from reid.search import SIMILARITY_DECIMALS, plot_rank_rows, short_name, write_rank_html
from reid.tensorboard import INSTALL_HINT
from reid.train_config import ReIDConfig
from vi_translate.checkpoint import save_translator_checkpoint
from vi_translate.cli import main as translate_main
from vi_translate.config import TranslatorConfig
from vi_translate.cyclegan import build_nets
from vi_translate.sample import output_names

REPO = Path(__file__).resolve().parents[1]
TINY = ModelConfig(arch="tiny", height=32, width=16)


def write_image(path: Path, value: int = 100, size=(16, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path)
    return path


def one_error(capsys, prog: str = "vireid") -> str:
    """The single `PROG: error: ...` line on stderr (log lines may come before it)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line for line in lines if line.startswith(f"{prog}:")] == [lines[-1]]
    assert lines[-1].startswith(f"{prog}: error: ")
    return lines[-1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", build_model("tiny"), TINY)


# ------------------------------------------------------------------------------------------------ 1. eval.*

@pytest.mark.parametrize("key", ["trials", "every", "batch_size"])
def test_eval_numbers_below_one_are_config_errors_naming_the_key(key):
    with pytest.raises(ConfigError, match=rf"^eval\.{key} must be >= 1, got 0$"):
        load_config(ReIDConfig, None, [f"eval.{key}=0"])


def test_vireid_train_refuses_eval_trials_0_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_command, "train_reid", lambda *a, **k: pytest.fail("training started"))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run")}))
    assert vireid_main(["train", str(config), "eval.trials=0"]) == 2
    assert "eval.trials must be >= 1, got 0" in one_error(capsys)


# ------------------------------------------------------------------------------------------------ 2. install hints

def test_install_hints_work_from_a_checkout():
    assert "pip install -e '.[tensorboard]'" in INSTALL_HINT
    sources = [path for package in ("reid", "vi_translate", "experiments") for path in (REPO / package).rglob("*.py")]
    assert [str(path) for path in sources if "vireid[" in path.read_text()] == []


# ------------------------------------------------------------------------------------------------ 3. data info

def test_data_info_of_unlabelled_footage_counts_no_identity(tmp_path, capsys):
    for n in range(3):
        write_image(tmp_path / "vis" / "cam1" / f"{n}.jpg")
    write_image(tmp_path / "ir" / "a.png")
    assert vireid_main(["data", "info", "--dataset", "folder", "--root", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train"]["ids"] == "none (unlabelled footage)" and "ids_per_modality" not in report["train"]
    assert report["train"]["images"] == {"vis": 3, "ir": 1} and report["test"] is None


# ------------------------------------------------------------------------------------------------ 4. sample names

def nested_inputs(root: Path) -> list[Path]:
    """Five images, three of them named 0001 in different folders, one a.jpg beside a.png."""
    names = ["0001.jpg", "cam1/0001.jpg", "cam2/0001.png", "cam2/a.jpg", "cam2/a.png"]
    return [write_image(root / name, 30 * n) for n, name in enumerate(names)]


def test_sample_output_names_keep_the_relative_path_and_never_clash(tmp_path):
    inputs = nested_inputs(tmp_path / "in")
    inputs.append(write_image(tmp_path / "in" / "grid.png"))  # would be the grid's name
    assert output_names(inputs, tmp_path / "in", "vis2ir") == [
        "0001_vis2ir.png", "cam1_0001_vis2ir.png", "cam2_0001_vis2ir.png", "cam2_a_vis2ir.png",
        "cam2_a-2_vis2ir.png", "grid-2_vis2ir.png"]
    assert output_names(inputs[1:2], inputs[1], "ir2vis") == ["0001_ir2vis.png"]  # a single file: its name


def tiny_translator(path: Path) -> Path:
    config = TranslatorConfig()
    config.model.ngf, config.model.ndf, config.model.n_blocks = 4, 4, 1
    config.image.load_height, config.image.load_width, config.image.crop_height, config.image.crop_width = 36, 18, 32, 16
    nets = build_nets(config.model, config.image.ir_channels)
    state = {"nets": {name: module.state_dict() for name, module in nets.modules().items()}}
    return save_translator_checkpoint(path, config=config_to_dict(config), step=0, state=state)


def test_sample_writes_one_file_per_input_of_nested_folders(tmp_path, capsys):
    inputs = nested_inputs(tmp_path / "in")
    translator = tiny_translator(tmp_path / "translator.pt")
    out = tmp_path / "look"
    assert translate_main(["sample", "--checkpoint", str(translator), "--input", str(tmp_path / "in"), "--direction",
                           "vis2ir", "--out", str(out), "--device", "cpu"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(inputs) + 1 and "grid_vis2ir.png" in written
    assert "wrote 6 files" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ 7. checkpoint folder

def test_a_checkpoint_that_is_a_folder_is_called_a_folder(tmp_path, checkpoint, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=f"^{run} is a folder, not a checkpoint file$"):
        load_checkpoint(run)
    shutil.copy(checkpoint, run / "checkpoints" / "last.pt")
    images = write_image(tmp_path / "images" / "a.jpg").parent
    assert vireid_main(["extract", "--checkpoint", str(run), "--images", str(images), "--modality", "vis",
                        "--out", str(tmp_path / "f.pt")]) == 2
    error = one_error(capsys)
    assert f"{run} is a folder, not a checkpoint file (did you mean {run / 'checkpoints' / 'last.pt'}?)" in error
    assert "not found" not in error


# ------------------------------------------------------------------------------------------------ 8. features vs folder

@pytest.fixture
def features_of_a_folder(tmp_path, checkpoint, capsys) -> dict:
    folder = tmp_path / "gallery"
    for n in range(4):
        write_image(folder / "0001" / f"{n}.jpg", 40 * n)
    features = tmp_path / "gallery.pt"
    assert vireid_main(["extract", "--checkpoint", str(checkpoint), "--images", str(folder), "--modality", "vis",
                        "--out", str(features), "--workers", "0"]) == 0
    capsys.readouterr()
    return {"folder": folder, "features": features, "out": tmp_path / "out"}


def search_features(case: dict, folder: Path) -> list[str]:
    return ["search", "--query", str(folder), "--query-features", str(case["features"]), "--gallery",
            str(case["folder"]), "--gallery-features", str(case["features"]), "--out", str(case["out"])]


def test_search_refuses_a_features_file_paired_with_another_folder(features_of_a_folder, tmp_path, capsys):
    other = tmp_path / "other"
    for name in ("x.jpg", "y.jpg"):
        write_image(other / name)
    assert vireid_main(search_features(features_of_a_folder, other)) == 2
    error = one_error(capsys)
    assert f"--query-features {features_of_a_folder['features']} does not describe the images under --query {other}" \
        in error
    assert "4 of its 4 images are not there (0001/0.jpg, 0001/1.jpg, 0001/2.jpg, ...)" in error
    assert "2 of the 2 images there are not in it (x.jpg, y.jpg)" in error
    assert "cannot read image" not in error and not features_of_a_folder["out"].exists()


def test_search_refuses_a_folder_with_images_its_features_file_lacks(features_of_a_folder, capsys):
    folder = features_of_a_folder["folder"]
    write_image(folder / "0002" / "new.jpg")
    assert vireid_main(search_features(features_of_a_folder, folder)) == 2
    error = one_error(capsys)
    assert "1 of the 5 images there are not in it (0002/new.jpg)" in error and "not there" not in error


# ------------------------------------------------------------------------------------------------ 9. --log-level after

@pytest.mark.parametrize("main, command, module, name", [
    (vireid_main, "train", train_command, "train_reid"),
    (translate_main, "train", translate_cli, "train_translator"),
    (experiments_main, "run", experiments_cli, "run_experiment"),
])
def test_log_level_after_the_command(main, command, module, name, tmp_path, monkeypatch, capsys):
    seen = []

    def work(config, *args, **kwargs):
        seen.append(logging.getLevelName(logging.getLogger("reid").level))
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        Path(config.output_dir, "results.md").write_text("| table |")
        return "last.pt"

    monkeypatch.setattr(module, name, work)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"runtime": {"log_level": "ERROR"}, "output_dir": str(tmp_path / "run")}))
    assert main([command, str(config), "--log-level", "DEBUG"]) == 0
    assert main(["--log-level", "WARNING", command, str(config)]) == 0  # before the command, as ever
    assert main([command, str(config)]) == 0
    assert seen == ["DEBUG", "WARNING", "ERROR"]


def test_log_level_after_a_nested_command(monkeypatch, capsys):
    import reid.commands.data as data_command
    seen = []
    monkeypatch.setattr(data_command, "_run_data_info",
                        lambda args: seen.append(logging.getLevelName(logging.getLogger("reid").level)) or (0, ""))
    assert vireid_main(["data", "info", "--dataset", "sysu", "--root", "x", "--log-level", "ERROR"]) == 0
    assert seen == ["ERROR"]


# ------------------------------------------------------------------------------------------------ 10. skipped files

def test_skipped_files_are_counted_by_suffix_once_per_folder(tmp_path, caplog):
    write_image(tmp_path / "a.jpg")
    for name in ("b.tif", "sub/c.tif", "d.webp", "README", ".hidden.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="reid.data.folder"):
        assert walk_images(tmp_path) == ["a.jpg"]
    assert [record.getMessage() for record in caplog.records] == [
        f"skipped 4 files that are not .bmp/.jpeg/.jpg/.png (2 .tif, 1 without suffix, 1 .webp) under {tmp_path}"]


# ------------------------------------------------------------------------------------------------ 11. huge images

def test_images_over_the_pixel_limit_are_named(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    large, huge = write_image(tmp_path / "large.png", size=(16, 16)), write_image(tmp_path / "huge.png", size=(32, 32))
    with caplog.at_level(logging.WARNING, logger="reid.data.io"), no_bomb_warning():
        assert read_image(large).size == (16, 16)
    assert [r.getMessage() for r in caplog.records] == [
        f"{large}: 16 x 16 pixels, more than PIL's decompression-bomb limit of 200 (PIL.Image.MAX_IMAGE_PIXELS); "
        "reading it anyway"]
    with pytest.raises(ImageReadError, match=f"^cannot read image {huge}: .*1024 pixels.*raise that limit"):
        read_image(huge)


class no_bomb_warning:
    """Fails when a DecompressionBombWarning reaches the warnings machinery (it would print without a file name)."""

    def __enter__(self):
        self.catcher = warnings.catch_warnings(record=True)
        self.caught = self.catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, Image.DecompressionBombWarning)]


# ------------------------------------------------------------------------------------------------ 12. HTML and PNG

@pytest.fixture
def ranking(tmp_path) -> dict:
    query = [str(write_image(tmp_path / "q" / f"query_{n}.png", 20 * n)) for n in range(5)]
    gallery = [str(write_image(tmp_path / "g" / "cam1" / f"a_rather_long_gallery_name_{n}.png", 30 * n))
               for n in range(3)]
    indices = torch.tensor([[0, 1, 2]] * 5).numpy()
    similarities = torch.tensor([[0.91234, 0.5, -0.25]] * 5).numpy()
    return {"query": query, "gallery": gallery, "indices": indices, "similarities": similarities, "tmp": tmp_path}


def test_html_shows_the_first_rows_and_says_how_many(ranking):
    path = write_rank_html(ranking["query"], ranking["gallery"], ranking["indices"], ranking["similarities"],
                           ranking["tmp"] / "r.html", max_rows=2)
    text = path.read_text()
    assert text.count('<tr class="ranks">') == 2 and "Queries shown: the first 2 of 5." in text
    assert "query_2.png" not in text and "&middot; 0.91<" in text
    full = write_rank_html(ranking["query"], ranking["gallery"], ranking["indices"], ranking["similarities"],
                           ranking["tmp"] / "all.html").read_text()
    assert full.count('<tr class="ranks">') == 5 and "Queries shown: all 5." in full


def test_png_captions_name_each_image_with_two_decimals(ranking, monkeypatch):
    from matplotlib.axes import Axes

    captions = []
    monkeypatch.setattr(Axes, "set_xlabel", lambda self, text, **kwargs: captions.append(text))
    plot_rank_rows(ranking["query"], ranking["gallery"], ranking["indices"], ranking["similarities"],
                   ranking["tmp"] / "r.png", max_rows=1)
    assert SIMILARITY_DECIMALS == 2
    assert captions == ["query\nquery_0.png", f"#1 0.91\n{short_name('a_rather_long_gallery_name_0.png')}",
                        f"#2 0.50\n{short_name('a_rather_long_gallery_name_1.png')}",
                        f"#3 -0.25\n{short_name('a_rather_long_gallery_name_2.png')}"]
    assert short_name("a_rather_long_gallery_name_0.png") == "\u2026lery_name_0.png"
    assert short_name("short.png") == "short.png"


def test_search_html_rows_option(tmp_path, checkpoint, capsys):
    for n in range(3):
        write_image(tmp_path / "q" / "0001" / f"{n}.jpg", 50 * n)
        write_image(tmp_path / "g" / "0001" / f"{n}.jpg", 60 * n)
    out = tmp_path / "out"
    assert vireid_main(["search", "--checkpoint", str(checkpoint), "--query", str(tmp_path / "q"), "--gallery",
                        str(tmp_path / "g"), "--out", str(out), "--workers", "0", "--html-rows", "2"]) == 0
    text = (out / "ranks.html").read_text()
    assert text.count('<tr class="ranks">') == 2 and "the first 2 of 3" in text and "ranks.csv" in text
    assert len((out / "ranks.csv").read_text().splitlines()) == 1 + 3 * 3  # every query's ranking
    with pytest.raises(SystemExit):
        vireid_main(["search", "--help"])
    assert re.search(r"--html-rows\s+HTML_ROWS\s+queries shown in ranks.html", capsys.readouterr().out)
