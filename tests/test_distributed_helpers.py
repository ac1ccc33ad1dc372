"""`distributed_helpers.run_in_processes` itself: forked processes while they can train, spawned ones once this
process has used torch.export and then autograd, after which torch refuses a backward pass in a forked child (the
ONNX export tests do that, so the multi-process tests after them in one pytest run depend on it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SCRIPT = """
import sys
import torch
from distributed_helpers import all_reduced_backward, forked_child_can_backward, run_in_processes, start_method

assert forked_child_can_backward() and start_method() == "fork"
run_in_processes(all_reduced_backward, rendezvous=sys.argv[1] + "/forked")
torch.export.export(torch.nn.Linear(3, 2), (torch.randn(2, 3),))
torch.ones(1, requires_grad=True).sum().backward()
assert not forked_child_can_backward() and start_method() == "spawn"
run_in_processes(all_reduced_backward, rendezvous=sys.argv[1] + "/spawned")
print("both ran")
"""


def test_processes_train_after_torch_export_and_a_backward_pass_here(tmp_path):
    """In a fresh interpreter, so that this pytest process keeps forking."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=os.environ | {"PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "both ran"
