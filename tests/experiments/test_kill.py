"""Kill anywhere: `python -m experiments run CONFIG` killed with SIGKILL at points across its stages and run again
ends with the results of an uninterrupted run and no half-written file; a stage interrupted under one config
starts afresh under another, and resumes in place under the same one."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import experiments.runner as runner
from reid import files
from experiments.config import ExperimentConfig
from reid.checkpoint import load_checkpoint
from reid.config import load_config
from reid.data import make_synthetic_sysu

from experiment_helpers import tiny_experiment_config, write_config

REPOSITORY = Path(__file__).resolve().parents[2]
# files of the run folder, in the order they appear; each run is killed the moment its file appears. A metrics
# line is written just before its checkpoint: killing when one appears stops a run between the two
KILL_POINTS = (
    "translator/metrics.jsonl",                   # the translator's first step logged, before its checkpoint
    "translator/checkpoints/last.pt",             # the translator after its first of two steps
    "translated/manifest.jsonl",                  # the translation after its first batch
    "reid/_first_stages/*/metrics.jsonl",         # the shared first stage's epoch logged, before its checkpoint
    "reid/cluster_contrast/seed_0/eval/epoch_002.json",       # cluster_contrast's second stage evaluated, before its log and checkpoint
    "reid/joint/seed_0/checkpoints/last.pt",      # joint, having taken the first stage's state
    "report/epochs.png",                          # the report, between its pictures
    "results.json",                               # between results.json and results.md
)
TIMING_KEYS = ("seconds", "images_per_s")  # the only numbers that may differ between two runs
RUN_TIMEOUT_S = 300


def tiny_experiment(tmp_path: Path, data_root: Path, output_dir: Path, name: str, **overrides) -> Path:
    """The runner tests' tiny config with strategies cluster_contrast and joint (the shared first stage and the translation
    are used), a checkpoint and a metrics line at every translator step; `overrides` replace top-level sections."""
    config = tiny_experiment_config(data_root, output_dir, ("cluster_contrast", "joint"), chance_draws=2, **overrides)
    config["translator"]["train"] |= {"checkpoint_every": 1, "log_every": 1}
    return write_config(config, tmp_path / f"{name}.yaml")


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "synthetic"
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    return root


# ------------------------------------------------------------------------------------------- the runs


def experiment_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "experiments", "run", str(config)]


def start(config: Path, log: Path) -> subprocess.Popen:
    """`python -m experiments run CONFIG` in the background, on one thread (the tiny models gain nothing from
    more, and the kill points stay far apart), its output appended to `log`."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "a") as output:
        return subprocess.Popen(experiment_command(config), cwd=REPOSITORY, env=env, stdout=output,
                                stderr=subprocess.STDOUT)


def kill_when(process: subprocess.Popen, run_dir: Path, pattern: str, log: Path) -> None:
    """SIGKILL `process` the moment a file matching `pattern` appears under `run_dir`."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not any(run_dir.glob(pattern)):
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {pattern} appeared:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{pattern} did not appear within {RUN_TIMEOUT_S} s")
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, f"the run ended before the kill at {pattern}"


def finish(process: subprocess.Popen, log: Path) -> None:
    assert process.wait(timeout=RUN_TIMEOUT_S) == 0, log.read_text()


# ------------------------------------------------------------------------------------------- what must match


def without_timing(value):
    """`value` (nested dicts and lists) without the keys whose values are wall-clock measurements."""
    if isinstance(value, dict):
        return {key: without_timing(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(item) for item in value]
    return value


def comparable_results(run_dir: Path) -> dict:
    """The parts of results.json that do not depend on the run folder or the clock: the summary, per-seed rows,
    chance rows, per-epoch records and the dataset's counts."""
    results = json.loads((run_dir / "results.json").read_text())
    kept = {key: results[key] for key in ("summary", "results", "chance", "strategies", "seeds", "chance_draws")}
    return without_timing(kept | {"epochs": results["epochs"], "dataset": results["dataset"]["summary"]})


def jsonl_records(path: Path) -> list[dict]:
    return [without_timing(json.loads(line)) for line in path.read_text().splitlines()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The trained weights of a checkpoint: a ReID model's, or the translator's four networks'."""
    state = load_checkpoint(path)["state"]
    if "model" in state:
        return state["model"]
    return {f"{net}.{key}": tensor for net, tensors in state["nets"].items() for key, tensor in tensors.items()}


def differing_weights(path: Path, reference: Path) -> list[str]:
    ours, theirs = weights(path), weights(reference)
    assert ours.keys() == theirs.keys(), path
    return [key for key in ours if not torch.equal(ours[key], theirs[key])]


def file_digests(folder: Path, pattern: str) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob(pattern))}


def differences_from(run_dir: Path, reference: Path) -> list[str]:
    """What differs between two runs of one config: results, per-epoch metrics files, trained weights (every
    checkpoint) and translated images."""
    ours, theirs = comparable_results(run_dir), comparable_results(reference)
    found = [f"results.json: {key} differs" for key in theirs if ours[key] != theirs[key]]
    for path in sorted(reference.rglob("metrics.jsonl")):
        relative = path.relative_to(reference)
        if jsonl_records(run_dir / relative) != jsonl_records(path):
            found.append(f"{relative}: records differ")
    for path in sorted(reference.rglob("last.pt")):
        relative = path.relative_to(reference)
        found += [f"{relative}: weights {key} differ" for key in differing_weights(run_dir / relative, path)][:3]
    if file_digests(run_dir / "translated", "*.png") != file_digests(reference / "translated", "*.png"):
        found.append("translated images")
    return found


def is_temp(path: Path) -> bool:
    return ".tmp" in path.name or path.name.endswith(".partial")


def half_written(run_dir: Path, *, temps_allowed: bool = False) -> list[str]:
    """Files under `run_dir` that a killed writer left: JSON, JSONL, YAML, checkpoint, torch and PNG files that
    do not read back, and (unless `temps_allowed`: right after a kill, before a rerun cleans up) temp files."""
    problems = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(run_dir).as_posix()
        if is_temp(path):
            if not temps_allowed:
                problems.append(f"{relative}: a temp file")
            continue
        try:
            read_back(path)
        except Exception as error:  # noqa: BLE001 - any failure to read back is a finding
            problems.append(f"{relative}: {type(error).__name__}: {error}")
    return problems


def read_back(path: Path) -> None:
    """Read a file of a run folder as its kind; raise when it does not read back whole."""
    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".jsonl":
        for line in path.read_text().splitlines(keepends=True):
            assert line.endswith("\n"), "a last line without its newline"
            json.loads(line)
    elif path.suffix == ".yaml":
        yaml.safe_load(path.read_text())
    elif path.name == "last.pt":
        load_checkpoint(path)
    elif path.suffix == ".pt":
        torch.load(path, weights_only=True)
    elif path.suffix == ".png":
        with Image.open(path) as image:
            image.load()


# ------------------------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_killed_anywhere_and_rerun_ends_as_an_uninterrupted_run(tmp_path, data_root):
    killed, reference = tmp_path / "killed" / "run", tmp_path / "reference" / "run"  # results.md names the folder
    config = tiny_experiment(tmp_path, data_root, killed, "killed")
    log = tmp_path / "killed.log"
    uninterrupted = start(tiny_experiment(tmp_path, data_root, reference, "reference"), tmp_path / "reference.log")
    for pattern in KILL_POINTS:
        assert not any(killed.glob(pattern)), f"{pattern} existed before its run: the kill points are out of order"
        kill_when(start(config, log), killed, pattern, log)
        torn = half_written(killed, temps_allowed=True)
        assert not torn, f"killed at {pattern}:\n" + "\n".join(torn)
    finish(start(config, log), log)
    finish(uninterrupted, tmp_path / "reference.log")

    differences = differences_from(killed, reference)
    assert not differences, "\n".join(differences)
    torn = half_written(killed)
    assert not torn, "\n".join(torn)
    stages = json.loads((killed / "stages.json").read_text())
    assert {record["status"] for record in stages.values()} == {runner.DONE}
    assert (killed / "results.md").read_text() == (reference / "results.md").read_text()


def interrupt(log: runner.StageLog, name: str, stage_print: str, folder: Path) -> None:
    """Run stage `name` into `folder` until it has written a file and a writer's temp file, then stop it as a kill
    would: nothing after the stop runs."""

    def stopped():
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.pt").write_text("the interrupted run's epochs")
        (folder / "checkpoints" / ".last.pt.x1y2.tmp").write_text("half a checkpoint")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.run_stage(log, name, stage_print, [folder], stopped)


def listing(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def test_a_write_stopped_midway_leaves_the_old_file_and_the_next_one_replaces_its_temp(tmp_path):
    path = files.write_atomically(tmp_path / "results.json", lambda handle: handle.write(b'{"old": 1}'))

    def stopped(handle):
        handle.write(b'{"new": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.write_atomically(path, stopped)
    assert json.loads(path.read_text()) == {"old": 1} and listing(tmp_path) == ["results.json"]
    (tmp_path / ".results.json.tmp").write_bytes(b'{"new": ')  # what a SIGKILL midway leaves: no clean-up runs
    files.write_atomically(path, lambda handle: handle.write(b'{"new": 2}'))
    assert json.loads(path.read_text()) == {"new": 2} and listing(tmp_path) == ["results.json"]
    assert path.stat().st_mode & 0o777 == files.FILE_MODE


def test_an_interrupted_stage_resumes_under_its_config_and_starts_afresh_under_another(tmp_path, caplog):
    folder = tmp_path / "reid" / "cluster_contrast" / "seed_0"
    interrupt(runner.StageLog(tmp_path), "reid/cluster_contrast/seed_0", "a", folder)
    recorded = json.loads((tmp_path / "stages.json").read_text())
    assert recorded == {"reid/cluster_contrast/seed_0": {"fingerprint": "a", "outputs": None, "status": runner.RUNNING}}
    log = runner.StageLog(tmp_path)
    assert log.reusable("reid/cluster_contrast/seed_0", "a") is None  # running, not done

    # the same config resumes in place, without the temp file
    seen = runner.run_stage(log, "reid/cluster_contrast/seed_0", "a", [folder], lambda: {"files": listing(folder)})
    assert seen == {"files": ["checkpoints/last.pt"]}
    assert runner.StageLog(tmp_path).reusable("reid/cluster_contrast/seed_0", "a") == seen

    # another config, interrupted: its record says so, and the next config starts afresh
    folder = tmp_path / "translator"
    interrupt(runner.StageLog(tmp_path), "translator", "b", folder)
    with caplog.at_level(logging.WARNING, logger=runner.__name__):
        seen = runner.run_stage(runner.StageLog(tmp_path), "translator", "c", [folder],
                                lambda: {"exists": folder.exists()})
    assert seen == {"exists": False}
    assert f"stage translator: removing {folder} before running: its config changed" in caplog.text


def test_a_stage_folder_without_a_record_is_removed_before_running(tmp_path, caplog):
    """A folder left by an interrupted run of an older toolkit (which recorded stages only when they completed)
    or beside a deleted stages.json holds a run of an unknown config: nothing of it is resumed."""
    folder = tmp_path / "translated"
    interrupt(runner.StageLog(tmp_path), "translate", "a", folder)
    (tmp_path / "stages.json").unlink()
    with caplog.at_level(logging.WARNING, logger=runner.__name__):
        seen = runner.run_stage(runner.StageLog(tmp_path), "translate", "a", [folder],
                                lambda: {"exists": folder.exists()})
    assert seen == {"exists": False}
    assert (f"stage translate: removing {folder} before running: it holds no run recorded in stages.json"
            in caplog.text)


def test_stages_json_of_an_older_toolkit_is_read_and_a_damaged_one_named(tmp_path):
    (tmp_path / "stages.json").write_text(json.dumps({"translator": {"fingerprint": "a", "outputs": {"x": 1}}}))
    log = runner.StageLog(tmp_path)
    assert log.reusable("translator", "a") == {"x": 1} and log.reusable("translator", "b") is None
    (tmp_path / "stages.json").write_text('{"translator": ')
    with pytest.raises(ValueError, match=r"stages.json is not valid JSON .*remove it"):
        runner.StageLog(tmp_path)


def test_a_reid_run_interrupted_under_an_older_config_is_not_resumed(tmp_path, data_root, monkeypatch):
    """A ReID stage killed after its last epoch under one learning rate, then run under another: the new run
    trains its epochs with the new rate instead of resuming the old run's checkpoint."""
    run_dir = tmp_path / "run"

    def reid_stage(lr: float) -> tuple[str, object]:
        """(fingerprint, ReID config) of the stage reid/cluster_contrast/seed_0 of a tiny experiment with this cross-stage lr."""
        section = {"model": {"arch": "tiny", "height": 32, "width": 16}, "augment": {"pad": 2},
                   "cluster": {"k1": 6, "k2": 2, "min_samples": 2},
                   "train": {"iterations": 1, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                             "stages": {"intra": {"epochs": 1}, "cross": {"epochs": 1, "lr": lr}}},
                   "eval": {"every": 2, "trials": 1, "batch_size": 16}}
        config = load_config(ExperimentConfig, tiny_experiment(tmp_path, data_root, run_dir, f"lr_{lr}", reid=section))
        reid = runner.reid_config(config, "cluster_contrast", run_dir)
        return runner.fingerprint(runner.results_affecting(reid)), reid

    def run(stage_print: str, reid, train) -> dict:
        monkeypatch.setattr(runner, "train_reid", train)
        return runner.run_stage(runner.StageLog(run_dir), "reid/cluster_contrast/seed_0", stage_print, [Path(reid.output_dir)],
                                lambda: runner.stage_reid(reid))

    train_reid = runner.train_reid

    def killed_after_training(reid, **options):
        train_reid(reid, **options)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(*reid_stage(0.001), killed_after_training)
    trained = run(*reid_stage(0.002), train_reid)
    history = runner.read_history(trained["metrics"])
    assert [(line["epoch"], line["stage"], line["lr"]) for line in history] == [(1, "intra", 0.00035),
                                                                                (2, "cross", 0.002)]
