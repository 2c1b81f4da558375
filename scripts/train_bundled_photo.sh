#!/usr/bin/env bash
# Rebuilds models/caltech101-effnet-anil.pt and its card (see scripts/photo_recipe.md).
#   bash scripts/train_bundled_photo.sh CALTECH_ROOT [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?give the folder holding 101_ObjectCategories.zip}
RUNS=${2:-runs}
A=(--dataset caltech-101 --data-root "$DATA" --backbone efficientnet_lite0 --trunk-train last:1 --val-every 25
   --val-episodes 300 --checkpoint-every 10 --meta-batch-size 16 --iterations 150 --device cpu --seed 42)
.venv/bin/anil-studio train "${A[@]}" --meta-lr 1e-4 --out "$RUNS/effnet-last1"
.venv/bin/anil-studio train "${A[@]}" --meta-lr 3e-5 --shots 1 --iterations 50 --out "$RUNS/effnet-last1-1shot"
cp "$RUNS/effnet-last1/best.pt" models/caltech101-effnet-anil.pt
.venv/bin/anil-studio tune --checkpoint models/caltech101-effnet-anil.pt --data-root "$DATA" --episodes 300 --write
.venv/bin/anil-studio card --photo --write --checkpoint models/caltech101-effnet-anil.pt --data-root "$DATA" \
  --settings 5x1,5x5 --episodes 1000 --seed 0 --compare models/caltech101-anil.pt \
  --recipe scripts/photo_recipe.md --out models/caltech101-effnet-anil.md
