#!/usr/bin/env bash
# Reproduces the bundled natural-image model models/caltech101-anil.pt (see its card):
# pre-train the CNN4-64 trunk as a 64-way classifier on the Caltech-101 train classes
# (84x84, flips + small affine), rescale its features, meta-train ANIL (batched engine),
# then write the card with both baselines. Usage:
#   bash scripts/train_bundled_caltech.sh CALTECH_ROOT [WORK_DIR]
# CALTECH_ROOT holds 101_ObjectCategories/ or 101_ObjectCategories.zip. Env: PRETRAIN_EPOCHS (12),
# ANIL_ITERATIONS (50), TEST_STEPS (50: head steps at test time and in the app), DEVICE (auto). Idempotent: finished steps are skipped, ANIL resumes.
set -euo pipefail
DATA=${1:?Caltech-101 root (folder holding 101_ObjectCategories or its zip)}
WORK=${2:-runs/caltech}
PY=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-auto}
mkdir -p "$WORK"
if [ ! -f "$WORK/pretrained.pt" ]; then
  $PY -m anil_engine pretrain --dataset caltech-101 --data-root "$DATA" --epochs "${PRETRAIN_EPOCHS:-12}" \
    --batch-size 128 --lr 0.002 --hidden-size 64 --input-size 84 --ways 5 --seed 42 --device "$DEVICE" \
    --out "$WORK/pretrained.pt"
fi
RESUME=""
[ -f "$WORK/anil/last.pt" ] && RESUME="--resume"
$PY -m anil_engine train --dataset caltech-101 --data-root "$DATA" --init-from "$WORK/pretrained.pt" \
  --init-feature-norm 16 --ways 5 --shots 5 --query 5 --meta-batch-size 8 --meta-lr 0.0005 --fast-lr 0.1 \
  --adaptation-steps 5 --iterations "${ANIL_ITERATIONS:-50}" --val-every 25 --val-episodes 200 \
  --checkpoint-every 25 --seed 42 --device "$DEVICE" --out "$WORK/anil" $RESUME
cp "$WORK/anil/best.pt" models/caltech101-anil.pt
$PY -m anil_engine card --write --checkpoint models/caltech101-anil.pt --data-root "$DATA" --settings 5x1,5x5 \
  --episodes 1000 --seed 0 --baselines --adaptation-steps "${TEST_STEPS:-50}" --recipe "$(cat scripts/caltech_recipe.md)" --out models/caltech101-anil.md
