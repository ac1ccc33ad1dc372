"""The GPU figures in one run, for a lent GPU machine: prints a Markdown block to paste into benchmarks/RESULTS.md.

    benchmarks/gpu_check.sh [--cpu] [--parts PART,...] [--out FILE] [--workdir DIR]

Parts (each in its own process, with its own time budget; a failed or timed-out part is reported in the block and
the others still run; the exit status is 1 when any part failed, else 0):

  gpu-tests           the tests marked `gpu` (pytest -m gpu): passed / failed / skipped counts
  cyclegan            benchmarks/bench_cyclegan_step.py: fp32 against bf16 + channels_last, images/s, at the SYSU
                      recipe's translator (ngf = ndf = 64, 9 blocks, 256x128 crops, batch 4)
  reid                benchmarks/bench_reid_train.py: fp32 against bf16 + channels_last, images/s, AGW ResNet-50 at
                      288x144 with the recipe's 512 images a step (no translated views)
  jaccard             benchmarks/bench_jaccard.py: k-reciprocal Jaccard + DBSCAN at SYSU-MM01 size (34,167 x 2,048)
                      with CUDA features (faiss on the GPU): seconds, peak resident and GPU memory
  torchrun-reid       python -m torch.distributed.run --nproc_per_node=1 -m reid.cli train (tiny synthetic data)
  torchrun-translate  the same for -m vi_translate.cli train

Without a visible CUDA device, or with --cpu, the parts run on the CPU at tiny sizes, two at a time, with CUDA
hidden from them: a check that the script and the benchmarks' options work, not figures. The GPU-only parts are then
reported as skipped: gpu-tests is not run, jaccard runs a CPU smoke at N = 1,000. The whole run stays under its
deadline (GPU: 460 s, the 30 s probe and the parts' budgets, 420 s, included; each part's timeout is its budget or
what is left, whichever is less). Progress goes to stderr, the block to stdout and to --out (default
WORKDIR/gpu_check.md); each part's stdout / stderr stay in WORKDIR as PART.out / PART.err.

--inject PART=fail|hang (repeatable) is for testing this script: `fail` appends an unknown option to the part's real
command, `hang` replaces it by a process that sleeps past a 2 s budget.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
PASS, FAIL, NO_GPU, NOT_RUN = "pass", "FAIL", "skipped (no GPU)", "not run"
GPU_DEADLINE_S = 460  # 7 min 40 s: the whole run (probe 30 s + the parts' budgets, 420 s) stays under 8 minutes
CPU_DEADLINE_S = 300
PROBE_BUDGET_S = 30
HANG_BUDGET_S = 2
INJECTED_OPTION = "--injected-failure"
RUNNING: set[subprocess.Popen] = set()  # the parts' processes now running (ended on Ctrl-C)
RUNNING_LOCK = threading.Lock()
SAY_LOCK = threading.Lock()
INTERRUPTED = threading.Event()


@dataclass
class Outcome:
    status: str
    result: str
    seconds: float = 0.0
    budget: float = 0.0
    details: str = ""  # what went wrong: the tail of the part's stderr
    command: list[str] | None = None


@dataclass
class Part:
    key: str
    label: str
    what: str
    budget_gpu: float  # seconds
    budget_cpu: float
    command: Callable[["Check"], list[str]]
    judge: Callable[["Check", "Finished"], Outcome]
    what_cpu: str = ""
    cpu_smoke: bool = True  # False: not run in CPU mode (reported as skipped for lack of a GPU)


@dataclass
class Finished:
    returncode: int | None  # None: timed out
    seconds: float
    stdout: str
    stderr: str


@dataclass
class Check:
    gpu: bool
    workdir: Path
    probe: dict
    injected: dict[str, str] = field(default_factory=dict)
    jobs: int = 1

    @property
    def python(self) -> list[str]:
        return [sys.executable]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        if not self.gpu:
            env["CUDA_VISIBLE_DEVICES"] = ""  # CPU mode: the parts see no GPU even on a GPU machine
            if self.jobs > 1:
                env["OMP_NUM_THREADS"] = "1"  # parts side by side: one thread each, no oversubscription
        return env


# --------------------------------------------------------------------------- the parts


def last_json(stdout: str) -> dict:
    """The benchmark's --json line (its last line that parses as a JSON object)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    raise ValueError("the benchmark printed no JSON result")


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def failed(finished: Finished, reason: str | None = None) -> Outcome:
    if reason is None:
        reason = (f"exit status {finished.returncode}" if finished.returncode is not None else "timed out")
    return Outcome(FAIL, reason, details=tail(finished.stderr or finished.stdout))


def gpu_tests_command(check: Check) -> list[str]:
    return [*check.python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
            f"--junitxml={check.workdir / 'gpu_tests.xml'}"]


def pytest_counts(junit_xml: Path) -> dict[str, int]:
    """{"tests", "passed", "failed", "errors", "skipped"} from pytest's JUnit XML report."""
    root = ElementTree.parse(junit_xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {name: sum(int(suite.get(name, 0)) for suite in suites) for name in ("tests", "failures", "errors",
                                                                                    "skipped")}
    return {"tests": counts["tests"], "failed": counts["failures"], "errors": counts["errors"],
            "skipped": counts["skipped"],
            "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]}


def judge_gpu_tests(check: Check, finished: Finished) -> Outcome:
    report = check.workdir / "gpu_tests.xml"
    if finished.returncode is None or not report.exists():
        return failed(finished)
    counts = pytest_counts(report)
    summary = (f"{counts['passed']} passed, {counts['failed']} failed, {counts['errors']} errors, "
               f"{counts['skipped']} skipped")
    if finished.returncode not in (0, 5) or counts["failed"] or counts["errors"]:
        return Outcome(FAIL, summary, details=tail(finished.stdout, 30))
    if counts["tests"] == 0:
        return Outcome(FAIL, "no test is marked gpu")
    return Outcome(PASS, summary)


CYCLEGAN_GPU = {"height": 256, "width": 128, "ngf": 64, "ndf": 64, "n_blocks": 9, "batch": 4}  # sysu.yaml translator
CYCLEGAN_CPU = {"height": 64, "width": 32, "ngf": 8, "ndf": 8, "n_blocks": 2, "batch": 2}


def cyclegan_command(check: Check) -> list[str]:
    size = CYCLEGAN_GPU if check.gpu else CYCLEGAN_CPU
    timing = (["--device", "cuda", "--gpu-steps", "20", "--warmup", "3"] if check.gpu else
              ["--device", "cpu", "--steps", "2", "--warmup", "1"])
    return [*check.python, "benchmarks/bench_cyclegan_step.py", *timing, "--batch-sizes", str(size["batch"]),
            "--height", str(size["height"]), "--width", str(size["width"]), "--ngf", str(size["ngf"]),
            "--ndf", str(size["ndf"]), "--n-blocks", str(size["n_blocks"]), "--json"]


def speed_result(row: dict, gpu: bool) -> str:
    fast = "bf16 + channels_last" if gpu else "channels_last (no bf16 on the CPU)"
    return f"fp32 {row['fp32']:.1f} images/s, {fast} {row['fast']:.1f} images/s: {row['ratio']:.2f}x"


def judge_speed(check: Check, finished: Finished) -> Outcome:
    if finished.returncode != 0:
        return failed(finished)
    try:
        row = last_json(finished.stdout)["rows"][0]
        return Outcome(PASS, speed_result(row, check.gpu))
    except (ValueError, KeyError, IndexError) as error:
        return failed(finished, f"unreadable result: {error}")


REID_GPU = {"arch": "agw_resnet50", "height": 288, "width": 144, "batch": 512}  # 16 x 16 infrared + 2 x 8 x 16 visible
REID_CPU = {"arch": "small", "height": 64, "width": 32, "batch": 16}


def reid_command(check: Check) -> list[str]:
    size = REID_GPU if check.gpu else REID_CPU
    timing = (["--device", "cuda", "--gpu-batch", str(size["batch"]), "--gpu-steps", "10", "--warmup", "2"]
              if check.gpu else ["--device", "cpu", "--batch", str(size["batch"]), "--steps", "1", "--warmup", "1"])
    return [*check.python, "benchmarks/bench_reid_train.py", *timing, "--arch", size["arch"],
            "--height", str(size["height"]), "--width", str(size["width"]), "--no-views", "--training-only", "--json"]


JACCARD_GPU_N, JACCARD_CPU_N = 34_167, 1_000


def jaccard_command(check: Check) -> list[str]:
    return [*check.python, "benchmarks/bench_jaccard.py", "--sizes", "--full",
            str(JACCARD_GPU_N if check.gpu else JACCARD_CPU_N), "--device", "cuda" if check.gpu else "cpu", "--json"]


def judge_jaccard(check: Check, finished: Finished) -> Outcome:
    if finished.returncode != 0:
        return failed(finished)
    try:
        row = last_json(finished.stdout)["rows"][0]
        result = (f"{row['total_s']:.1f} s (Jaccard {row['jaccard_s']:.1f} s), peak resident "
                  f"{row['peak_rss_gib']:.2f} GiB")
        if not check.gpu:
            return Outcome(NO_GPU, f"GPU figure not measured; CPU smoke at N = {row['N']:,}: {result}, "
                                   f"{row['clusters']} clusters")
        result += (f", peak GPU {row['peak_gpu_gib']:.2f} GiB (torch's own {row['peak_torch_gpu_gib']:.2f}), "
                   f"{row['clusters']} clusters")
        if not row["faiss_gpu"]:
            return Outcome(FAIL, f"faiss has no GPU (install with `make test FAISS=gpu`); torch kNN fallback: {result}")
        return Outcome(PASS, result)
    except (ValueError, KeyError, IndexError) as error:
        return failed(finished, f"unreadable result: {error}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def synthetic_root(workdir: Path) -> Path:
    return workdir / "synthetic"


def smoke_config(check: Check, trainer: str) -> Path:
    """The tiny config of one trainer on the generated synthetic dataset (the tests' torchrun configs)."""
    root, device = str(synthetic_root(check.workdir)), "cuda" if check.gpu else "cpu"
    out = check.workdir / f"{trainer}_run"
    if trainer == "reid":
        config = {"data": {"name": "synthetic", "root": root},
                  "model": {"arch": "tiny", "height": 32, "width": 16},
                  "augment": {"pad": 2},
                  "cluster": {"k1": 6, "k2": 2, "min_samples": 2},
                  "train": {"iterations": 2, "num_identities": 2, "vis_identities": 1, "num_instances": 2,
                            "stages": {"intra": {"epochs": 1}, "cross": {"epochs": 1}}},
                  "method": {"name": "pgm"},
                  "eval": {"every": 2, "trials": 1, "settings": ["all-single"]},
                  "runtime": {"device": device, "workers": 0, "log_level": "WARNING"},
                  "output_dir": str(out)}
    else:
        config = {"data": {"name": "synthetic", "root": root},
                  "image": {"load_height": 36, "load_width": 18, "crop_height": 32, "crop_width": 16},
                  "model": {"ngf": 4, "ndf": 4, "n_blocks": 1, "n_layers_d": 2},
                  "train": {"batch_size": 2, "epochs": 1, "epochs_decay": 1, "max_steps": 4, "log_every": 2,
                            "sample_every": 4, "checkpoint_every": 2},
                  "runtime": {"device": device, "workers": 0, "log_level": "WARNING"},
                  "output_dir": str(out)}
    import yaml

    path = check.workdir / f"{trainer}_smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun_command(check: Check, module: str, trainer: str) -> list[str]:
    return [*check.python, "-m", "torch.distributed.run", "--nproc_per_node=1", f"--master_port={free_port()}",
            "-m", module, "train", str(smoke_config(check, trainer)), "--fresh"]


def metrics_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def judge_torchrun(trainer: str) -> Callable[[Check, Finished], Outcome]:
    def judge(check: Check, finished: Finished) -> Outcome:
        if check.probe.get("dataset_error"):
            return Outcome(FAIL, f"the synthetic dataset was not written: {check.probe['dataset_error']}")
        if finished.returncode != 0:
            return failed(finished)
        out = check.workdir / f"{trainer}_run"
        lines = metrics_lines(out / "metrics.jsonl")
        if not (out / "checkpoints" / "last.pt").exists():
            return failed(finished, "exit status 0 but no checkpoints/last.pt")
        where = "1 GPU" if check.gpu else "CPU"
        if trainer == "reid":
            if [line.get("epoch") for line in lines] != [1, 2] or "eval" not in lines[-1]:
                return failed(finished, f"metrics.jsonl does not hold epochs 1 and 2 with an evaluation: {lines}")
            return Outcome(PASS, f"{finished.seconds:.0f} s wall; 2 epochs (intra, cross), evaluated, on the {where}")
        if [line.get("step") for line in lines] != [2, 4]:
            return failed(finished, f"metrics.jsonl does not hold steps 2 and 4: {lines}")
        return Outcome(PASS, f"{finished.seconds:.0f} s wall; 4 steps, on the {where}")
    return judge


PARTS = [
    Part("gpu-tests", "1", "tests marked `gpu` (`pytest -m gpu`)", 90, 0, gpu_tests_command, judge_gpu_tests,
         cpu_smoke=False),
    Part("cyclegan", "2", "CycleGAN training step, ngf = ndf = 64, 9 blocks, 256x128, batch 4 (SYSU recipe)", 60, 60,
         cyclegan_command, judge_speed,
         what_cpu="CycleGAN training step, tiny (ngf = ndf = 8, 2 blocks, 64x32, batch 2)"),
    Part("reid", "3", "ReID training step, AGW ResNet-50, 288x144, batch 512, no views (SYSU recipe)", 90, 60,
         reid_command, judge_speed,
         what_cpu="ReID training step, tiny (the `small` two-stream network, 64x32, batch 16, no views)"),
    Part("jaccard", "4", "Jaccard + DBSCAN, 34,167 x 2,048 features on CUDA (faiss GPU)", 100, 60,
         jaccard_command, judge_jaccard, what_cpu="Jaccard + DBSCAN (on the GPU: 34,167 x 2,048 on CUDA, faiss GPU)"),
    Part("torchrun-reid", "5a", "`torchrun --nproc_per_node=1 -m reid.cli train` (tiny synthetic)", 40, 90,
         lambda check: torchrun_command(check, "reid.cli", "reid"), judge_torchrun("reid")),
    Part("torchrun-translate", "5b", "`torchrun --nproc_per_node=1 -m vi_translate.cli train` (tiny synthetic)", 40,
         90, lambda check: torchrun_command(check, "vi_translate.cli", "translate"),
         judge_torchrun("translate")),
]
PART_KEYS = [part.key for part in PARTS]


# --------------------------------------------------------------------------- running


def run_command(command: list[str], timeout: float, env: dict[str, str], log_stem: Path) -> Finished:
    """Run `command` in its own process group with output to log files; on timeout end that group."""
    started = time.perf_counter()
    with open(f"{log_stem}.out", "w") as stdout, open(f"{log_stem}.err", "w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(process)
        try:
            returncode = process.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            returncode = None
            end_group(process)
        except BaseException:
            end_group(process)
            raise
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(process)
    seconds = time.perf_counter() - started
    return Finished(returncode, seconds, Path(f"{log_stem}.out").read_text(errors="replace"),
                    Path(f"{log_stem}.err").read_text(errors="replace"))


def end_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group this script started (torchrun and its worker), SIGKILL after 3 s."""
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_part(part: Part, check: Check, deadline: float) -> Outcome:
    if not check.gpu and not part.cpu_smoke:
        return Outcome(NO_GPU, "not run: every test marked gpu needs CUDA")
    budget = part.budget_gpu if check.gpu else part.budget_cpu
    command = part.command(check)
    injected = check.injected.get(part.key)
    if injected == "fail":
        command = [*command, INJECTED_OPTION]
    elif injected == "hang":
        command, budget = [*check.python, "-c", "import time; time.sleep(600)"], HANG_BUDGET_S
    if INTERRUPTED.is_set():
        return Outcome(FAIL, "not started: interrupted", budget=budget)
    left = deadline - time.monotonic()
    if left < 1:
        return Outcome(FAIL, "not started: the run's deadline was reached", budget=budget)
    timeout = min(budget, left)
    finished = run_command(command, timeout, check.env(), check.workdir / part.key)
    if INTERRUPTED.is_set():
        outcome = failed(finished, "interrupted")
    elif finished.returncode is None:
        cut = "its budget" if timeout == budget else "the run's deadline"
        outcome = failed(finished, f"timed out after {timeout:.0f} s ({cut})")
    else:
        try:
            outcome = part.judge(check, finished)
        except Exception as error:  # noqa: BLE001 - a broken judge is this part's failure, not the run's
            outcome = failed(finished, f"could not read the result: {type(error).__name__}: {error}")
    outcome.seconds, outcome.budget, outcome.command = finished.seconds, budget, command
    return outcome


def probe(workdir: Path) -> dict:
    """Versions and devices (in a subprocess, so this process never holds a CUDA context), and the synthetic dataset
    of the torchrun smoke runs."""
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", str(synthetic_root(workdir))]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    try:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=PROBE_BUDGET_S)
        return json.loads(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 else {
            "error": tail(result.stderr, 5)}
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as error:
        return {"error": f"{type(error).__name__}: {error}"}


def probe_main(dataset_root: str) -> None:
    info: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu": cpu_name()}
    import torch

    info |= {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
             "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads(),
             "tf32_conv": bool(torch.backends.cudnn.allow_tf32),
             "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32)}
    if info["cuda_available"]:
        info |= {"device_count": torch.cuda.device_count(), "device_name": torch.cuda.get_device_name(0),
                 "device_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    try:
        import faiss

        info |= {"faiss": faiss.__version__, "faiss_gpus": faiss.get_num_gpus()
                 if hasattr(faiss, "StandardGpuResources") else None}
    except Exception as error:  # noqa: BLE001
        info["faiss"] = f"not importable ({type(error).__name__})"
    try:
        from reid.data import make_synthetic_sysu

        make_synthetic_sysu(dataset_root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    except Exception as error:  # noqa: BLE001 - reported by the torchrun parts
        info["dataset_error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(info))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_smi() -> str | None:
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                 "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    return "; ".join(lines) if result.returncode == 0 and lines else None


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (commit or "unknown") + (" with local changes" if dirty else "")


# --------------------------------------------------------------------------- the block


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s" if seconds >= 60 else f"{seconds:.0f} s"


def on_off(flag) -> str:
    return "unknown" if flag is None else ("on" if flag else "off")


def display(command: list[str]) -> str:
    """A command as a maintainer would type it: `python` for this interpreter, paths relative to the checkout."""
    shown = ["python" if word == sys.executable else word for word in command]
    return shlex.join(shown).replace(f"{REPO}/", "")


def render(check: Check, outcomes: dict[str, Outcome], *, mode_note: str, started: datetime.datetime,
           total_s: float, deadline_s: float, smi: str | None) -> str:
    info = check.probe
    lines = [f"### GPU check (`benchmarks/gpu_check.sh`), {started:%Y-%m-%d %H:%M} UTC", ""]
    if "error" in info:
        lines += [f"Probe FAILED (torch / faiss versions and devices unknown): {info['error']}", ""]
    device = "no GPU used"
    if check.gpu:
        count = info.get("device_count", 1)
        device = (f"{info.get('device_name')} ({info.get('device_memory_gib')} GiB"
                  + (f"; {count} visible, the parts use the first)" if count > 1 else ")"))
    smi_text = f"; nvidia-smi: {smi}" if smi else ("; nvidia-smi: not found" if check.gpu else "")
    faiss_gpus = info.get("faiss_gpus")
    build = f"GPU build, {faiss_gpus} GPU(s)" if faiss_gpus is not None else "CPU build"
    faiss = f"faiss {info.get('faiss')} ({build})"
    lines += [f"Machine: {device}{smi_text}; {info.get('cpus')} CPU cores ({info.get('cpu')}). "
              f"torch {info.get('torch')} (CUDA {info.get('cuda')}, cuDNN {info.get('cudnn')}), {faiss}, "
              f"Python {info.get('python')}; commit {git_commit()}.",
              f"Mode: {mode_note}. {minutes(total_s)} in all (deadline {minutes(deadline_s)})."
              + (f" fp32 is torch's default: TF32 convolutions {on_off(info.get('tf32_conv'))}, TF32 matmul "
                 f"{on_off(info.get('tf32_matmul'))}." if check.gpu else ""), "",
              "| part | what | status | result | s (budget) |", "|---|---|---|---|---:|"]
    for part in PARTS:
        outcome = outcomes[part.key]
        what = part.what if check.gpu or not part.what_cpu else part.what_cpu
        status = f"**{outcome.status}**" if outcome.status == FAIL else outcome.status
        timing = f"{outcome.seconds:.0f} ({outcome.budget:.0f})" if outcome.budget else ""
        lines.append(f"| {part.label} | {what} | {status} | {outcome.result.replace('|', '/')} | {timing} |")
    failures = [part for part in PARTS if outcomes[part.key].status == FAIL]
    ran = [part for part in PARTS if outcomes[part.key].status != NOT_RUN]
    skipped = [part.label for part in PARTS if outcomes[part.key].status == NO_GPU]
    lines.append("")
    if failures:
        lines.append(f"{len(failures)} of {len(ran)} parts FAILED: " + ", ".join(
            f"{part.label} ({part.key})" for part in failures) + ".")
    else:
        lines.append(f"All {len(ran)} parts run passed" + (f" ({len(skipped)} skipped for lack of a GPU)"
                                                             if skipped else "") + ".")
    if not check.gpu:
        lines.append("No GPU: " + (f"part(s) {', '.join(skipped)} skipped for lack of a GPU; " if skipped else "")
                     + "the figures are those of CPU smoke runs at tiny sizes, not GPU figures.")
    commands = [(part, outcomes[part.key].command) for part in ran]
    lines += ["", "Commands (from the checkout, `python` the virtualenv's):", "", "```"]
    lines += [f"{part.label:>3}  {display(command)}" for part, command in commands if command]
    lines.append("```")
    for part in failures:
        details = outcomes[part.key].details
        if details:
            lines += ["", f"Part {part.label} ({part.key}), the end of its output:", "", "```", details, "```"]
    return "\n".join(lines) + "\n"


def exit_status(outcomes: dict[str, Outcome], probe_info: dict) -> int:
    """1 when a part failed (or the probe did), else 0; skipped and unselected parts are no failure."""
    return int("error" in probe_info or any(outcome.status == FAIL for outcome in outcomes.values()))


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/gpu_check.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="CPU mode even when a GPU is visible")
    parser.add_argument("--parts", help=f"comma-separated subset of: {', '.join(PART_KEYS)} (default: all)")
    parser.add_argument("--out", type=Path, help="also write the block here (default: WORKDIR/gpu_check.md)")
    parser.add_argument("--workdir", type=Path, help="logs, data and runs (default: a new temporary folder)")
    parser.add_argument("--deadline", type=float, help=f"seconds for the whole run (default: {GPU_DEADLINE_S} on "
                                                       f"the GPU, {CPU_DEADLINE_S} on the CPU)")
    parser.add_argument("--jobs", type=int, help="parts run at once (default: 1 on the GPU, where the figures "
                                                   "need the machine to themselves; 2 on the CPU)")
    parser.add_argument("--inject", action="append", default=[], metavar="PART=fail|hang",
                        help="make a part fail (for testing this script)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.selected = PART_KEYS if not args.parts else [key.strip() for key in args.parts.split(",") if key.strip()]
    unknown = sorted(set(args.selected) - set(PART_KEYS))
    if unknown:
        parser.error(f"--parts: unknown part(s) {', '.join(unknown)}; expected {', '.join(PART_KEYS)}")
    args.injected = {}
    for item in args.inject:
        key, _, how = item.partition("=")
        if key not in PART_KEYS or how not in ("fail", "hang"):
            parser.error(f"--inject {item!r}: expected PART=fail or PART=hang, PART one of {', '.join(PART_KEYS)}")
        args.injected[key] = how
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe:
        probe_main(args.probe)
        return 0
    start_clock, started = time.monotonic(), datetime.datetime.now(datetime.timezone.utc)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gpu_check_")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"gpu_check: logs and runs in {workdir}")
    info = probe(workdir)
    cuda = bool(info.get("cuda_available"))
    gpu = cuda and not args.cpu
    if gpu:
        mode_note = "GPU"
    elif args.cpu:
        mode_note = "CPU (--cpu" + (", a GPU was visible" if cuda else "") + ")"
    else:
        mode_note = "CPU (no CUDA device visible: torch.cuda.is_available() is False)"
    deadline_s = args.deadline or (GPU_DEADLINE_S if gpu else CPU_DEADLINE_S)
    deadline = start_clock + deadline_s
    jobs = args.jobs or (1 if gpu else 2)
    check = Check(gpu=gpu, workdir=workdir, probe=info, injected=args.injected, jobs=jobs)
    say(f"gpu_check: {mode_note}; deadline {deadline_s:.0f} s")
    if gpu and jobs > 1:
        say(f"gpu_check: --jobs {jobs} on the GPU: the parts' figures disturb one another")

    def run(part: Part) -> Outcome:
        say(f"[{part.label}] {part.key} ...")
        outcome = run_part(part, check, deadline)
        say(f"[{part.label}] {part.key}: {outcome.status} in {outcome.seconds:.1f} s: {outcome.result}")
        return outcome

    outcomes = {part.key: Outcome(NOT_RUN, "not selected (--parts)") for part in PARTS
                if part.key not in args.selected}
    signal.signal(signal.SIGTERM, interrupt)  # `timeout` / a scheduler ending this run ends the parts too
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)
    futures = {part.key: pool.submit(run, part) for part in PARTS if part.key in args.selected}
    try:
        outcomes |= {key: future.result() for key, future in futures.items()}
    except KeyboardInterrupt:
        INTERRUPTED.set()
        with RUNNING_LOCK:
            running = list(RUNNING)
        for process in running:
            end_group(process)
        pool.shutdown(wait=True, cancel_futures=True)
        say("gpu_check: interrupted; its parts' processes ended, no block written")
        return 130
    pool.shutdown()
    smi = nvidia_smi() if gpu or cuda else None
    block = render(check, outcomes, mode_note=mode_note, started=started, total_s=time.monotonic() - start_clock,
                   deadline_s=deadline_s, smi=smi)
    out = args.out or workdir / "gpu_check.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(block)
    say(f"gpu_check: the block below is also in {out}\n" + "-" * 100)
    sys.stdout.write(block)
    sys.stdout.flush()
    status = exit_status(outcomes, info)
    say("-" * 100 + f"\ngpu_check: exit status {status}")
    return status


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def say(message: str) -> None:
    """A progress line on stderr, whole (parts run in threads side by side on the CPU)."""
    with SAY_LOCK:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
