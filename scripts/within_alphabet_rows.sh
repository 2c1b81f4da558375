#!/usr/bin/env bash
# The Omniglot cards' "within one alphabet" rows (Lake et al. 2015's one-shot protocol): 20-way 1-shot,
# every episode's 20 classes unrotated characters of one alphabet of the model's test split, 1,000 episodes,
# 15 queries per class, seed 0; the columns of a card (`card --settings ...,20x1@alphabet`): inductive BatchNorm
# with the model's own test-time views (the app's), transductive BatchNorm and inductive on the image alone
# (`--views 1`: transductive batches nine times over would take hours of a 2-core CPU), and nearest class mean
# with the model's views on the same episodes as the baseline. Prints the markdown table rows.
#   bash scripts/within_alphabet_rows.sh OMNIGLOT_DATA_ROOT [MODEL ...]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?Omniglot data root}; shift
MODELS=${*:-omniglot-lake-anil omniglot-vinyals-anil}
for m in $MODELS; do
  row="| $m |"
  for variant in "--bn inductive" "--bn transductive --views 1" "--bn inductive --views 1" "--bn inductive --method ncm"; do
    # shellcheck disable=SC2086
    json=$(.venv/bin/anil-studio eval --checkpoint "models/$m.pt" --data-root "$DATA" --split test --ways 20 \
      --shots 1 --query 15 --episodes 1000 --seed 0 --episodes-within alphabet --device cpu --json $variant)
    row="$row $(echo "$json" | .venv/bin/python -c 'import json,sys; r=json.load(sys.stdin); print("%.2f ± %.2f" % (r["accuracy"], r["ci95"]))') |"
  done
  echo "$row"
done
