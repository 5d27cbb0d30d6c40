#!/usr/bin/env bash
# One prepared device check (issue 16): Gemma-4-31B-shaped layers in bf16 on one GPU, <= 8 min on an H100/H200.
# Prints collect vs plain forward (8 x 512 tokens, target <= 1.03x), the --hybrid overhead, --offload sequential vs
# resident tokens/s on safetensors shards (target >= 0.85x) with peak device memory, and the full-31B extrapolation
# to a 24 GB card. `benchmarks/gpu_check.sh --cpu-smoke` runs the same code on a tiny CPU stack (CI / no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec timeout 480 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" benchmarks/gpu_check.py "$@"
