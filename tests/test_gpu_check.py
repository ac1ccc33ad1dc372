"""benchmarks/gpu_check.sh: its CPU mode runs the CPU-safe parts and prints the block with every part's line, the
GPU-only parts marked skipped; a failing or hanging part is reported as FAIL, the others still run and the exit
status is 1; the GPU mode's commands and configs are accepted by the benchmarks and the config schemas (checked
here on the CPU, where they stop at the missing CUDA device); and the block's GPU-mode lines from canned results."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
PART_LABELS = {"gpu-tests": "1", "cyclegan": "2", "reid": "3", "jaccard": "4", "torchrun-reid": "5a",
               "torchrun-translate": "5b"}


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gpu_check = load_gpu_check()


def run_script(*args: str, timeout: float = 330) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def rows(block: str) -> dict[str, list[str]]:
    """part label -> the cells of its table row (part, what, status, result, s (budget))."""
    found = {}
    for line in block.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in PART_LABELS.values():
            found[cells[0]] = cells
    return found


@pytest.mark.slow
def test_cpu_mode_runs_the_cpu_parts_and_marks_the_gpu_only_ones_skipped(tmp_path):
    result = run_script("--cpu", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "block.md"))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    block = result.stdout
    assert block == (tmp_path / "block.md").read_text()
    assert block.startswith("### GPU check (`benchmarks/gpu_check.sh`), 20")  # the date
    assert re.search(r"torch \S+ \(CUDA", block) and "Mode: CPU (--cpu" in block
    table = rows(block)
    assert set(table) == set(PART_LABELS.values())  # every part has its line
    status = {label: cells[2] for label, cells in table.items()}
    assert status == {"1": "skipped (no GPU)", "2": "pass", "3": "pass", "4": "skipped (no GPU)", "5a": "pass",
                      "5b": "pass"}
    assert "images/s" in table["2"][3] and "images/s" in table["3"][3]
    assert "CPU smoke at N = 1,000" in table["4"][3]
    assert "part(s) 1, 4 skipped for lack of a GPU" in block and "FAIL" not in block
    assert "All 6 parts run passed (2 skipped for lack of a GPU)." in block
    assert "--nproc_per_node=1" in block and "-m reid.cli train" in block and "-m vi_translate.cli train" in block
    work = tmp_path / "work"
    assert (work / "reid_run" / "checkpoints" / "last.pt").exists()
    assert (work / "translate_run" / "checkpoints" / "last.pt").exists()


def test_a_failing_or_hanging_part_fails_the_run_and_the_others_still_run(tmp_path):
    """cyclegan's real command gets an unknown option (the benchmark exits 2), jaccard's is replaced by a process that
    sleeps past a 2 s budget; reid, between them, still runs and passes; the exit status is 1."""
    result = run_script("--parts", "cyclegan,reid,jaccard", "--inject", "cyclegan=fail", "--inject", "jaccard=hang",
                        "--workdir", str(tmp_path / "work"))
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    block = result.stdout
    table = rows(block)
    assert set(table) == set(PART_LABELS.values())
    assert table["2"][2] == "**FAIL**" and table["2"][3] == "exit status 2"
    assert table["4"][2] == "**FAIL**" and table["4"][3].startswith("timed out after 2 s")
    assert table["3"][2] == "pass" and "images/s" in table["3"][3]
    assert {table[label][2] for label in ("1", "5a", "5b")} == {"not run"}
    assert "2 of 3 parts FAILED: 2 (cyclegan), 4 (jaccard)." in block
    assert "unrecognized arguments: --injected-failure" in block  # the failing part's own error, in the block
    assert "Mode: CPU (no CUDA device visible" in block
    assert "gpu_check: exit status 1" in result.stderr


def test_exit_status_counts_only_failures():
    Outcome = gpu_check.Outcome
    passed = {"a": Outcome(gpu_check.PASS, ""), "b": Outcome(gpu_check.NO_GPU, ""),
              "c": Outcome(gpu_check.NOT_RUN, "")}
    assert gpu_check.exit_status(passed, {}) == 0
    assert gpu_check.exit_status(passed | {"d": Outcome(gpu_check.FAIL, "")}, {}) == 1
    assert gpu_check.exit_status(passed, {"error": "torch not importable"}) == 1


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="{errors}"
failures="{failures}" skipped="{skipped}" tests="{tests}" time="1.0"></testsuite></testsuites>"""


def gpu_test_outcome(tmp_path, returncode: int, **counts):
    (tmp_path / "gpu_tests.xml").write_text(JUNIT.format(**counts))
    check = gpu_check.Check(gpu=True, workdir=tmp_path, probe={})
    return gpu_check.judge_gpu_tests(check, gpu_check.Finished(returncode, 3.0, "short test summary", ""))


def test_gpu_tests_counts_from_the_junit_report(tmp_path):
    good = gpu_test_outcome(tmp_path, 0, errors=0, failures=0, skipped=1, tests=6)
    assert (good.status, good.result) == ("pass", "5 passed, 0 failed, 0 errors, 1 skipped")
    bad = gpu_test_outcome(tmp_path, 1, errors=0, failures=2, skipped=0, tests=6)
    assert (bad.status, bad.result) == ("FAIL", "4 passed, 2 failed, 0 errors, 0 skipped")
    assert gpu_test_outcome(tmp_path, 5, errors=0, failures=0, skipped=0, tests=0).status == "FAIL"  # none marked gpu


def canned(result: dict) -> str:
    return "some output\n" + json.dumps(result) + "\n"


def test_gpu_mode_lines_from_canned_results(tmp_path):
    """On the GPU: the speed ratio line, the Jaccard line (a FAIL when faiss has no GPU) and the block's header."""
    check = gpu_check.Check(gpu=True, workdir=tmp_path, probe={
        "device_name": "NVIDIA H200", "device_memory_gib": 139.8, "device_count": 1, "torch": "2.14.1+cu130",
        "cuda": "13.0", "cudnn": 92400, "faiss": "1.15.1", "faiss_gpus": 1, "python": "3.11.7", "cpus": 16,
        "cpu": "x", "tf32_conv": True, "tf32_matmul": False})
    speed = gpu_check.judge_speed(check, gpu_check.Finished(0, 9.0, canned(
        {"rows": [{"device": "cuda", "batch": 4, "fp32": 100.0, "fast": 250.0, "ratio": 2.5}]}), ""))
    assert (speed.status, speed.result) == (
        "pass", "fp32 100.0 images/s, bf16 + channels_last 250.0 images/s: 2.50x")
    row = {"N": 34167, "jaccard_s": 20.0, "total_s": 21.5, "peak_rss_gib": 3.1, "peak_gpu_gib": 2.2,
           "peak_torch_gpu_gib": 0.3, "clusters": 794, "faiss_gpu": True}
    jaccard = gpu_check.judge_jaccard(check, gpu_check.Finished(0, 25.0, canned({"rows": [row]}), ""))
    assert jaccard.status == "pass" and jaccard.result == (
        "21.5 s (Jaccard 20.0 s), peak resident 3.10 GiB, peak GPU 2.20 GiB (torch's own 0.30), 794 clusters")
    no_faiss_gpu = gpu_check.judge_jaccard(check, gpu_check.Finished(
        0, 25.0, canned({"rows": [row | {"faiss_gpu": False}]}), ""))
    assert no_faiss_gpu.status == "FAIL" and "FAISS=gpu" in no_faiss_gpu.result
    assert gpu_check.judge_speed(check, gpu_check.Finished(0, 1.0, "no json here", "")).status == "FAIL"
    outcomes = {key: gpu_check.Outcome("pass", "ok", 1.0, 10.0) for key in gpu_check.PART_KEYS}
    outcomes["jaccard"] = no_faiss_gpu
    import datetime
    block = gpu_check.render(check, outcomes, mode_note="GPU", started=datetime.datetime(2027, 1, 2, 3, 4),
                             total_s=200.0, deadline_s=460, smi="NVIDIA H200, 570.1, 143771 MiB")
    assert block.startswith("### GPU check (`benchmarks/gpu_check.sh`), 2027-01-02 03:04 UTC")
    assert "Machine: NVIDIA H200 (139.8 GiB); nvidia-smi: NVIDIA H200, 570.1, 143771 MiB; 16 CPU cores" in block
    assert "torch 2.14.1+cu130 (CUDA 13.0, cuDNN 92400), faiss 1.15.1 (GPU build, 1 GPU(s))" in block
    assert "TF32 convolutions on, TF32 matmul off" in block
    assert rows(block)["4"][2] == "**FAIL**" and "1 of 6 parts FAILED: 4 (jaccard)." in block


def test_gpu_mode_budgets_fit_in_eight_minutes():
    parts = sum(part.budget_gpu for part in gpu_check.PARTS)
    assert gpu_check.PROBE_BUDGET_S + parts <= gpu_check.GPU_DEADLINE_S <= 8 * 60 - 15


def test_gpu_mode_commands_are_accepted(tmp_path):
    """The GPU mode's benchmark command lines parse (they stop at the missing CUDA device, after every option was
    read) and its torchrun configs load under the trainers' schemas, with runtime.device cuda."""
    check = gpu_check.Check(gpu=True, workdir=tmp_path, probe={})
    env = check.env() | {"CUDA_VISIBLE_DEVICES": ""}
    for part in ("cyclegan", "reid", "jaccard"):
        command = next(p for p in gpu_check.PARTS if p.key == part).command(check)
        assert "cuda" in command
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "--device cuda: no CUDA device is available" in result.stderr, (
            part, result.stderr[-2000:])
    from reid.config import load_config
    from reid.train_config import ReIDConfig
    from vi_translate.config import TranslatorConfig

    reid_config = load_config(ReIDConfig, gpu_check.smoke_config(check, "reid"))
    translator_config = load_config(TranslatorConfig, gpu_check.smoke_config(check, "translate"))
    assert reid_config.runtime.device == translator_config.runtime.device == "cuda"
    assert reid_config.data.root == translator_config.data.root == str(tmp_path / "synthetic")
