#!/usr/bin/env bash
# Does the batched engine train as well as learn2learn's loop? The same short pure-ANIL
# Omniglot run (vinyals split, 5-way 1-shot, same seed and settings) with each engine,
# then 1,000 test episodes (seed 0) of the final weights, inductive and transductive.
# Two runs per seed: reference (learn2learn's loop and Taskset) and batched (the default:
# batched step and fast sampler). The fast sampler draws learn2learn's tasks for the same
# seed, so the two runs of a seed see the same tasks and differ only by float rounding of
# the same gradients. Several seeds show how far rounding alone moves a run, against how far
# the seed does. With CONTROL=1 a third run per seed, reference-avx2, repeats the reference with
# PyTorch's and oneDNN's AVX2 kernels instead of their AVX-512 ones (ATEN_CPU_CAPABILITY=avx2,
# ONEDNN_MAX_CPU_ISA=AVX2; on a CPU without AVX-512 this changes nothing): learn2learn's loop against
# itself, same tasks, only the rounding differs.
# With PRECISION=float64 both engines meta-train in float64: rounding errors near 1e-16 instead of 1e-7, so
# what is left between the two runs of a seed is what the engines compute differently, not rounding
# amplified over hundreds of Adam steps. The report also compares the final weights of the two runs.
#   bash benchmarks/engine_accuracy.sh OMNIGLOT_ROOT [WORK_DIR]
# Env: ITERATIONS (300), SEEDS ("42 43 44"), CONTROL (0), PRECISION (float32). Idempotent: finished runs
# and evaluations are reused.
set -euo pipefail
DATA=${1:?Omniglot data root (images_background.npz or images_background/)}
PRECISION=${PRECISION:-float32}
WORK=${2:-runs/engine-accuracy-$PRECISION}
PY=${PYTHON:-.venv/bin/python}
ITER=${ITERATIONS:-300}
SEEDS=${SEEDS:-42 43 44}
RUNS="reference batched"
[ "${CONTROL:-0}" = 1 ] && RUNS="$RUNS reference-avx2"
for SEED in $SEEDS; do
  for RUNNAME in $RUNS; do
    RUN="$WORK/seed$SEED/$RUNNAME"
    ENGINE=${RUNNAME%-avx2}
    CAPABILITY=()
    [ "$RUNNAME" = reference-avx2 ] && CAPABILITY=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)
    if [ ! -f "$RUN/done.json" ]; then
      rm -rf "$RUN"
      mkdir -p "$RUN"
      env "${CAPABILITY[@]}" $PY -m anil_engine train --engine "$ENGINE" --dataset omniglot --data-root "$DATA" --ways 5 --shots 1 \
        --query 1 --meta-batch-size 32 --meta-lr 0.003 --fast-lr 0.5 --adaptation-steps 1 --iterations "$ITER" \
        --precision "$PRECISION" --val-every 1000000 --checkpoint-every 100 --seed "$SEED" --device cpu --quiet --out "$RUN" \
        > "$RUN.train.json"
      cp "$RUN.train.json" "$RUN/done.json"
    fi
    for BN in inductive transductive; do
      if [ ! -s "$RUN/test-$BN.json" ]; then
        $PY -m anil_engine eval --checkpoint "$RUN/last.pt" --dataset omniglot --data-root "$DATA" --split test \
          --ways 5 --shots 1 --query 15 --episodes 1000 --bn "$BN" --seed 0 --device cpu --json \
          > "$RUN/test-$BN.json.tmp"
        mv "$RUN/test-$BN.json.tmp" "$RUN/test-$BN.json"
      fi
    done
  done
done
# shellcheck disable=SC2086
$PY benchmarks/engine_accuracy_report.py "$WORK" $SEEDS
