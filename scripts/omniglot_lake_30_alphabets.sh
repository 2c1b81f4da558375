#!/usr/bin/env bash
# Issue 19: what learning from all 30 background alphabets (Lake et al.'s protocol) adds over the 25 that the lake
# models learn from (the other 5 are held out to choose settings on). The 25-alphabet recipe, unchanged, on the
# training and validation alphabets (`pretrain --train-splits train+val`, then `train --iterations 0`: the
# recipe's choice, the pre-trained trunk rescaled with a zero head, 50 head steps at test time), against the model
# the same recipe made from 25 alphabets, on the test alphabets: 20-way 1-shot within one alphabet (Lake's
# protocol) and on the whole split, inductive, 1,000 episodes, 15 queries, seed 0. Both are the recipe's final
# models; nothing is chosen on these numbers. Usage:
#   bash scripts/omniglot_lake_30_alphabets.sh OMNIGLOT_DATA_ROOT [HIDDEN] [WORK_DIR]
# HIDDEN 128 (default): against the 128-channel lake model bundled at cb5c65f (float32, as this run); 256: against
# the uncropped 256-channel model bundled at a454fda (pre-trained in bfloat16 where this run is float32, a second
# difference). Idempotent, resumable.
# On the 2-core AVX2 EPYC: about 80 min of pre-training for 128 channels, 4-5 h for 256; the comparison 10 min.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?Omniglot data root}
HIDDEN=${2:-128}
WORK=${3:-runs/lake30-h$HIDDEN}
PY=${PYTHON:-.venv/bin/python}
if [ "$HIDDEN" = 128 ]; then
  REF=runs/lake-experiments/lake128-bundled-cb5c65f.pt
  [ -f "$REF" ] || { mkdir -p "$(dirname "$REF")"; git show cb5c65f:models/omniglot-lake-anil.pt > "$REF"; }
else  # the 256-channel uncropped model of the same recipe from 25 alphabets, bundled at a454fda
  REF=runs/lake-experiments/lake256-bundled-a454fda.pt
  [ -f "$REF" ] || { mkdir -p "$(dirname "$REF")"; git show a454fda:models/omniglot-lake-anil.pt > "$REF"; }
fi
HIDDEN=$HIDDEN PRETRAIN_EPOCHS=15 TRAIN_SPLITS=train+val ANIL_ITERATIONS=0 \
  bash scripts/train_bundled_omniglot.sh "$DATA" lake "$WORK" > /dev/null
NEW=$WORK/anil/best.pt
test_eval() {  # CHECKPOINT [EVAL OPTIONS]: the card's inductive row, head 50 steps
  local ckpt=$1; shift
  $PY -m anil_engine eval --checkpoint "$ckpt" --dataset omniglot --split-scheme lake --data-root "$DATA" \
    --split test --ways 20 --shots 1 --query 15 --episodes 1000 --bn inductive --seed 0 --adaptation-steps 50 \
    --device cpu --json --quiet "$@" |
    $PY -c 'import json,sys; r=json.load(sys.stdin); print("%.2f ± %.2f" % (r["accuracy"], r["ci95"]))'
}
echo "| $HIDDEN channels | 25 alphabets ($REF) | 30 alphabets ($NEW) |"
echo "|---|---|---|"
echo "| 20w1s within one alphabet, head 50 steps | $(test_eval "$REF" --episodes-within alphabet) | $(test_eval "$NEW" --episodes-within alphabet) |"
echo "| 20w1s, head 50 steps | $(test_eval "$REF") | $(test_eval "$NEW") |"
$PY scripts/compare_trunks.py "$REF" "$NEW" --data-root "$DATA" --split test --within alphabet |
  grep -v '^  ' | sed 's/^/nearest class mean, within one alphabet: /'
