"""benchmarks/bench_export.py, whose figures docs/deployment.md and RESULTS.md quote: it exports, checks and times both
formats (torchscript, pt2, onnx; here at the tiny network's size, the ReID part only)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^  (torchscript|pt2|onnx) +export +[0-9.]+ s, max \|graph - PyTorch\| (\S+) on a batch of 4, +"
                 r"([0-9.]+) images/s: ([0-9.]+)x PyTorch eager$")


def test_rows_of_both_formats_with_their_difference_from_pytorch():
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package)
    command = [sys.executable, "benchmarks/bench_export.py", "--arch", "tiny", "--batch", "4", "--repeats", "1",
               "--skip-translator"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tiny 32x16, visible stem, L2-normalised features: PyTorch eager")
    rows = {match.group(1): match for match in map(ROW.match, lines[1:]) if match}
    assert set(rows) == {"torchscript", "pt2", "onnx"}, result.stdout
    assert float(rows["torchscript"].group(2)) == 0.0 and float(rows["pt2"].group(2)) == 0.0
    assert float(rows["onnx"].group(2)) <= 1e-5
    for row in rows.values():
        assert float(row.group(3)) > 0 and float(row.group(4)) > 0
