#!/usr/bin/env bash
# The GPU figures in one run, for a lent GPU machine (at most 8 minutes on one GPU): the tests marked gpu, bf16 +
# channels_last against fp32 for the CycleGAN and ReID training steps at the SYSU recipe's sizes, Jaccard + DBSCAN at
# SYSU-MM01 size with faiss on the GPU, and a one-GPU torchrun smoke run of each trainer. Prints a Markdown block to
# paste into benchmarks/RESULTS.md; exits 1 when a part failed. Without a GPU (or with --cpu) it runs its CPU-safe
# parts at tiny sizes on the CPU and reports the GPU-only ones as skipped.
#
#   benchmarks/gpu_check.sh [--cpu] [--parts PART,...] [--out FILE] [--workdir DIR]    (--help: the parts)
#
# Runs with the checkout's virtualenv (.venv/bin/python, as `make test FAISS=gpu` builds it), or $PYTHON when set.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
if [ ! -x "$python" ] && [ -z "${PYTHON:-}" ]; then
    python="$(command -v python3)"
fi
exec "$python" "$repo/benchmarks/gpu_check.py" "$@"
