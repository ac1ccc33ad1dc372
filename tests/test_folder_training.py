"""Own unlabelled footage (`folder`: ROOT/vis/... and ROOT/ir/...) through the three tools that need no identities:
`vi-translate train`, `vi-translate translate --dataset folder` (both modalities) and `vireid train` with an
unsupervised method (cluster report, no cluster quality against true ids, no evaluation); `oracle` and the experiment
runner, which need identities, refuse it."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from experiments.__main__ import main as experiments_main
from reid.cli import main as vireid_main
from reid.data import TranslatedViews, load_dataset
from reid.data.translated import MANIFEST_NAME, SUMMARY_NAME
from vi_translate.cli import main as translate_main

PERSONS = 5  # each a colour pair and a pattern, seen by two cameras per modality
SHOTS = 3  # images of a person per camera


def render_person(person: int, shot: int, infrared: bool, rng: np.random.Generator) -> Image.Image:
    """A 32x16 person: head, a top and trousers of the person's own colours (stripes on every other person), on a
    noisy background, shifted by a pixel or so; infrared: the grey levels of the colours, no hue."""
    palette = [((220, 40, 40), (30, 30, 160)), ((40, 200, 60), (200, 200, 200)), ((240, 220, 40), (20, 20, 20)),
               ((120, 40, 200), (230, 120, 30)), ((250, 250, 250), (90, 60, 30))]
    top, bottom = (np.array(colour, dtype=np.float32) for colour in palette[person % len(palette)])
    image = rng.normal(90 if not infrared else 30, 8, size=(32, 16, 3)).astype(np.float32)
    dy, dx = rng.integers(-1, 2, size=2)
    image[2 + dy:7 + dy, 5 + dx:11 + dx] = (225, 180, 150)  # head
    image[7 + dy:17 + dy, 3 + dx:13 + dx] = top
    if person % 2:
        image[9 + dy:17 + dy:3, 3 + dx:13 + dx] = 255 - top  # stripes
    image[17 + dy:30 + dy, 4 + dx:12 + dx] = bottom
    image += rng.normal(0, 6, size=image.shape) + 6 * shot
    if infrared:
        image = np.repeat(image @ np.array([0.3, 0.59, 0.11], dtype=np.float32), 3).reshape(32, 16, 3)
    return Image.fromarray(image.clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """ROOT/vis/{gate,hall}/day<d>/... (JPEG) and ROOT/ir/{cam3,cam6}/... (PNG, some directly in the camera folder):
    4 cameras, PERSONS x SHOTS images per camera, 60 images, no identities written anywhere."""
    root = tmp_path_factory.mktemp("footage")
    rng = np.random.default_rng(0)
    for camera in ("gate", "hall"):
        for person in range(PERSONS):
            for shot in range(SHOTS):
                path = root / "vis" / camera / f"day{shot % 2}" / f"frame_{person}{shot}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                render_person(person, shot, False, rng).save(path, quality=95)
    for camera in ("cam3", "cam6"):
        for person in range(PERSONS):
            for shot in range(SHOTS):
                folder = root / "ir" / camera / ("clip_a" if shot else "")
                folder.mkdir(parents=True, exist_ok=True)
                render_person(person, shot, True, rng).save(folder / f"t{person}{shot}.png")
    return root


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def translator(footage, tmp_path_factory, one_torch_thread) -> Path:
    """`vi-translate train` on the footage (data.name=folder) for two steps; its checkpoint."""
    base = tmp_path_factory.mktemp("translator")
    config = write_yaml(base / "translator.yaml", {
        "data": {"name": "folder", "root": str(footage)},
        "image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
        "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
        "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "max_steps": 2, "log_every": 1, "sample_every": 2,
                  "checkpoint_every": 2, "num_samples": 2},
        "runtime": {"device": "cpu", "workers": 0, "seed": 5},
        "output_dir": str(base / "run")})
    assert translate_main(["--log-level", "ERROR", "train", str(config)]) == 0
    return base / "run" / "checkpoints" / "last.pt"


def test_translator_trains_on_the_footage(translator):
    assert translator.is_file()
    metrics = [json.loads(line) for line in (translator.parent.parent / "metrics.jsonl").read_text().splitlines()]
    assert metrics and metrics[-1]["step"] == 2


@pytest.fixture(scope="module")
def translated(footage, translator, tmp_path_factory) -> tuple[Path, str]:
    """`vi-translate translate --dataset folder` of the whole footage (no --modality): OUT and what it printed."""
    out = tmp_path_factory.mktemp("translated") / "out"
    command = ["--log-level", "ERROR", "translate", "--checkpoint", str(translator), "--dataset", "folder", "--root",
               str(footage), "--out", str(out), "--device", "cpu", "--workers", "0"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert translate_main(command) == 0
    return out, printed.getvalue()


def test_translate_writes_both_modalities_of_the_footage(footage, translated):
    out, printed = translated
    assert "translated 60, already done 0, failed 0" in printed
    manifest = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    by_source = {entry["source"]: entry for entry in manifest}
    sources = sorted(p.relative_to(footage).as_posix() for p in footage.rglob("*") if p.is_file())
    assert sorted(by_source) == sources and len(sources) == 60  # every image once, paths relative to ROOT
    assert by_source["vis/gate/day0/frame_00.jpg"]["direction"] == "vis2ir"
    assert by_source["vis/gate/day0/frame_00.jpg"]["output"] == "vis/gate/day0/frame_00.png"
    assert by_source["ir/cam3/t00.png"]["direction"] == "ir2vis"
    assert by_source["ir/cam6/clip_a/t41.png"]["output"] == "ir/cam6/clip_a/t41.png"
    assert all(entry["status"] == "done" and (out / entry["output"]).is_file() for entry in manifest)
    with Image.open(out / "vis/hall/day1/frame_21.png") as view:
        assert view.size == (16, 32)  # the source's own size
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["dataset"] == "folder" and summary["dataset_root"] == str(footage.resolve())
    # the folder dataset's records pair with their views (what `vireid train translated=OUT` reads)
    records = load_dataset("folder", footage).train
    records, views = TranslatedViews(out, footage).pair(records)
    assert len(views) == 60 and all(Path(view).is_file() for view in views)


def test_translate_of_a_folder_of_one_modality_still_takes_modality(footage, translator, tmp_path, capsys):
    out = tmp_path / "gate_ir"
    assert translate_main(["--log-level", "ERROR", "translate", "--checkpoint", str(translator), "--dataset", "folder",
                           "--root", str(footage / "vis" / "gate"), "--modality", "vis", "--out", str(out),
                           "--device", "cpu", "--workers", "0"]) == 0
    manifest = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    assert len(manifest) == 15 and {entry["direction"] for entry in manifest} == {"vis2ir"}
    # without --modality a folder lacking vis/ and ir/ is an error naming the path and pointing to --modality
    assert translate_main(["translate", "--checkpoint", str(translator), "--dataset", "folder", "--root",
                           str(footage / "vis" / "gate"), "--out", str(tmp_path / "other"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert str(footage / "vis" / "gate" / "vis") in error and "--modality" in error and error.count("\n") == 1


def test_translate_refuses_two_images_that_would_share_an_output(footage, translator, tmp_path, capsys):
    root = tmp_path / "clash"
    for relpath in ("vis/cam1/a.jpg", "vis/cam1/a.png", "ir/b.png"):
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        render_person(0, 0, relpath.startswith("ir"), np.random.default_rng(0)).save(root / relpath)
    assert translate_main(["translate", "--checkpoint", str(translator), "--dataset", "folder", "--root", str(root),
                           "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert str(root / "vis/cam1/a.jpg") in error and str(root / "vis/cam1/a.png") in error
    assert "OUT/vis/cam1/a.png" in error and not (tmp_path / "out").exists()


def reid_config(footage: Path, out: Path, method: str = "cluster_contrast") -> dict:
    """One epoch of a tiny model (as tests/test_reid_train.py's tiny_reid_config) with evaluation due that epoch."""
    return {"data": {"name": "folder", "root": str(footage)},
            "method": {"name": method},
            "model": {"arch": "tiny", "height": 32, "width": 16},
            "cluster": {"k1": 6, "k2": 2, "eps": 0.6, "min_samples": 2},
            "train": {"iterations": 3, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                      "stages": {"intra": {"epochs": 1, "lr": 1e-3}, "cross": {"epochs": 0}}},
            "eval": {"every": 1, "trials": 2, "batch_size": 16},
            "runtime": {"device": "cpu", "workers": 0, "seed": 3},
            "output_dir": str(out)}


def test_joint_trains_on_the_footage_and_its_translated_views(footage, translated, tmp_path, capsys):
    out = tmp_path / "joint"
    data = reid_config(footage, out, method="joint") | {"translated": str(translated[0])}
    data["train"]["stages"] = {"intra": {"epochs": 0}, "cross": {"epochs": 1, "lr": 1e-3}}  # mixed-modal clusters
    assert vireid_main(["--log-level", "WARNING", "train", str(write_yaml(tmp_path / "joint.yaml", data))]) == 0
    line, = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert line["stage"] == "cross" and np.isfinite(line["loss_view"]) and line["cluster"]["num_clusters"] > 0
    assert "ari" not in line["cluster"] and "eval" not in line


SKIP_MESSAGE = "data.name=folder has no identities: cluster quality against true ids and the test protocol are skipped"


def test_unsupervised_reid_trains_with_a_cluster_report_and_no_evaluation(footage, tmp_path, capsys):
    out = tmp_path / "reid"
    config = write_yaml(tmp_path / "reid.yaml", reid_config(footage, out))
    assert vireid_main(["--log-level", "INFO", "train", str(config)]) == 0
    log = capsys.readouterr().err  # the run's log lines
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    cluster = lines[0]["cluster"]
    assert cluster["num_samples"] == 60 and cluster["num_clusters"] > 0
    assert cluster["num_outliers"] < 60 and cluster["mixed_clusters"] == 0  # per-modality clusters
    assert cluster["size_max"] >= cluster["size_median"] >= cluster["size_min"] >= 2
    assert not {"ari", "nmi", "pairwise_f", "purity", "num_true_ids", "id_coverage"} & set(cluster)
    assert "eval" not in lines[0] and not (out / "eval").exists()  # the test protocol did not run
    assert (out / "checkpoints" / "last.pt").is_file()
    assert log.count(SKIP_MESSAGE) == 1
    report_line = f"reid.train: pseudo-labels: {cluster['num_clusters']} clusters, {cluster['num_outliers']}/60 outliers"
    assert report_line in log
    assert "ARI" not in log and "evaluation" not in log


def test_oracle_is_refused_naming_the_reason(footage, tmp_path, capsys):
    out = tmp_path / "oracle"
    config = write_yaml(tmp_path / "oracle.yaml", reid_config(footage, out, method="oracle"))
    assert vireid_main(["train", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("vireid: error: method.name=oracle trains on the true identities, but data.name=folder "
                            "has none") and error.count("\n") == 1
    assert not out.exists()


def test_experiment_runner_refuses_the_footage(footage, tmp_path, capsys):
    out = tmp_path / "experiment"
    config = write_yaml(tmp_path / "experiment.yaml", {"data": {"name": "folder", "root": str(footage)},
                                                        "output_dir": str(out)})
    assert experiments_main(["run", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "data.name=folder has no identities" in error
    assert "vireid train" in error and "vi-translate" in error
    assert not out.exists()  # refused before anything is written
