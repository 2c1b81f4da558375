#!/usr/bin/env bash
# Issue 19: a test-time choice measured on all six of lake's validation folds, so that it is sure over the
# alphabets and not only over one fold's 4 usable ones. For each fold (`lake`, `lake-fold0` ... `lake-fold4`:
# every background alphabet held out once) it pre-trains a trunk on the fold's 25 training alphabets (framed by the
# ink, the bundled lake recipe at HIDDEN channels for EPOCHS epochs, seed 42), then compares that trunk's plain
# features (nearest class mean) with the same trunk under the compare_trunks.py options given after `--`, 20-way
# 1-shot within one alphabet on the fold's validation alphabets, 1,000 episodes, seed 0. Last, all folds' episodes
# pooled: the paired difference per alphabet and its interval with the 26 alphabets as the sample. Usage:
#   bash scripts/omniglot_lake_folds.sh OMNIGLOT_DATA_ROOT [WORK_DIR] [HIDDEN] [EPOCHS] -- COMPARE_OPTIONS
#   e.g. bash scripts/omniglot_lake_folds.sh DATA runs/lake-folds 64 5 -- --sqrt-b --centre-b
# A pre-training choice instead: B_PRETRAIN="--mirror-classes" (extra `pretrain` options) trains a second trunk
# per fold with them (same seed and epochs) and compares it with the plain one, e.g.
#   B_PRETRAIN=--mirror-classes bash scripts/omniglot_lake_folds.sh DATA
# Idempotent and resumable (an interrupted pre-training resumes). On the 2-core Intel Xeon, 64 channels and 5
# epochs: about 5 min of pre-training per fold (28 min for the six), about a minute for the six comparisons.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?Omniglot data root}; shift
WORK=runs/lake-folds; HIDDEN=64; EPOCHS=5
[ $# -gt 0 ] && [ "$1" != -- ] && { WORK=$1; shift; }
[ $# -gt 0 ] && [ "$1" != -- ] && { HIDDEN=$1; shift; }
[ $# -gt 0 ] && [ "$1" != -- ] && { EPOCHS=$1; shift; }
[ "${1:-}" = -- ] && shift
PY=${PYTHON:-.venv/bin/python}
read -r -a b_options <<< "${B_PRETRAIN:-}"
pretrain() {  # FOLD OUT [PRETRAIN OPTIONS]: the fold's trunk, unless OUT is there already
  local fold=$1 trunk=$2; shift 2
  [ -f "$trunk" ] && return
  local resume=(); [ -f "${trunk%.pt}.resume.pt" ] && resume=(--resume)
  $PY -m anil_engine pretrain --dataset omniglot --data-root "$DATA" --split-scheme "$fold" --epochs "$EPOCHS" \
    --batch-size 256 --lr 0.002 --ways 20 --seed 42 --device cpu --hidden-size "$HIDDEN" --input-size 28 \
    --crop ink --compute float32 --out "$trunk" "${resume[@]}" "$@" > /dev/null
}
results=()
for fold in lake lake-fold0 lake-fold1 lake-fold2 lake-fold3 lake-fold4; do
  trunk=$WORK/h$HIDDEN-e$EPOCHS/$fold/pretrained.pt
  pretrain "$fold" "$trunk"
  second=$trunk
  if [ ${#b_options[@]} -gt 0 ]; then
    second=$WORK/h$HIDDEN-e$EPOCHS$(printf '%s' "${b_options[*]}" | tr -c 'A-Za-z0-9' '_')/$fold/pretrained.pt
    pretrain "$fold" "$second" "${b_options[@]}"
  fi
  out=${second%/pretrained.pt}/compare$(printf '%s' "$*" | tr -c 'A-Za-z0-9' '_').json
  echo "== $fold"
  $PY scripts/compare_trunks.py "$trunk" "$second" --data-root "$DATA" --split val --within alphabet \
    --episodes-out "$out" "$@"
  results+=("$out")
done
echo "== all folds"
$PY scripts/compare_trunks.py --pool "${results[@]}"
