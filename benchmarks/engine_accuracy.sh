#!/usr/bin/env bash
# Does the batched engine train as well as learn2learn's loop? The same short pure-ANIL
# Omniglot run (vinyals split, 5-way 1-shot, same seed and settings) with each engine,
# then 1,000 test episodes (seed 0) of the final weights, inductive and transductive.
# Two runs: reference (learn2learn's loop and Taskset) and batched (the default: batched
# step and fast sampler). The fast sampler draws learn2learn's tasks for the same seed, so
# the two runs see the same tasks and differ only by float rounding of the same gradients.
#   bash benchmarks/engine_accuracy.sh OMNIGLOT_ROOT [WORK_DIR]
# Env: ITERATIONS (300). Idempotent: finished runs are reused.
set -euo pipefail
DATA=${1:?Omniglot data root (images_background.npz or images_background/)}
WORK=${2:-runs/engine-accuracy}
PY=${PYTHON:-.venv/bin/python}
ITER=${ITERATIONS:-300}
mkdir -p "$WORK"
RUNS="reference batched"
for ENGINE in $RUNS; do
  FLAGS="--engine $ENGINE"
  if [ ! -f "$WORK/$ENGINE/done.json" ]; then
    rm -rf "$WORK/$ENGINE"
    $PY -m anil_engine train $FLAGS --dataset omniglot --data-root "$DATA" --ways 5 --shots 1 --query 1 \
      --meta-batch-size 32 --meta-lr 0.003 --fast-lr 0.5 --adaptation-steps 1 --iterations "$ITER" \
      --val-every 1000000 --checkpoint-every 100 --seed 42 --device cpu --quiet --out "$WORK/$ENGINE" \
      > "$WORK/$ENGINE.train.json"
    cp "$WORK/$ENGINE.train.json" "$WORK/$ENGINE/done.json"
  fi
done
echo "| engine | meta-training seconds | test 5w1s inductive | test 5w1s transductive |"
echo "|---|---|---|---|"
for ENGINE in $RUNS; do
  ROW="| $ENGINE | $($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['train_seconds'])" "$WORK/$ENGINE/done.json")"
  for BN in inductive transductive; do
    R=$($PY -m anil_engine eval --checkpoint "$WORK/$ENGINE/last.pt" --dataset omniglot --data-root "$DATA" \
      --split test --ways 5 --shots 1 --query 15 --episodes 1000 --bn "$BN" --seed 0 --device cpu --json)
    ROW="$ROW | $(echo "$R" | $PY -c "import json,sys; r=json.load(sys.stdin); print(f\"{r['accuracy']:.2f} ± {r['ci95']:.2f}\")")"
  done
  echo "$ROW |"
done
