#!/usr/bin/env bash
# Every GPU measurement the batched engine still needs, as one script for a lent GPU (minutes, not hours):
# the GPU exactness tests (the Triton kernels compiled, the one-pass trunk), then the 84x84 speed table
# with the Triton kernels as a third column, then where the time goes. Each step has its own time limit
# and writes into OUT_DIR, so a step that fails or runs out of time leaves the others' results.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# Env: PYTHON (.venv/bin/python), ITERATIONS (10).
set -uo pipefail
OUT=${1:-runs/gpu-check}
PY=${PYTHON:-.venv/bin/python}
ITER=${ITERATIONS:-10}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
step() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "$name: exit $? after $((SECONDS - start)) s (output in $OUT/$name.txt)"
}
step tests 300 $PY -m pytest -q -p no:cacheprovider tests/test_fused_gpu.py tests/test_batched.py -k "gpu or cuda"
step speed84 360 $PY benchmarks/meta_train_speed.py --device cuda --configs 84px-5w5s-cnn4-32,84px-5w5s-cnn4-64 \
  --iterations "$ITER" --rounds 1 --triton --json "$OUT/speed84.json"
step profile84 180 $PY benchmarks/meta_train_speed.py --device cuda --configs 84px-5w5s-cnn4-32 --iterations 3 \
  --rounds 1 --triton --profile
