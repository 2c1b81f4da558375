#!/usr/bin/env bash
# Both bundled Omniglot models, one after the other (see scripts/train_bundled_omniglot.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?Omniglot data root}
# The bundled vinyals model was trained on a GPU (about 95 s there); its 256-channel trunk takes hours on a CPU.
HIDDEN=256 PRETRAIN_EPOCHS=20 ANIL_ITERATIONS=300 bash scripts/train_bundled_omniglot.sh "$DATA" vinyals
# The bundled lake model: 256 channels, 15 epochs in bfloat16 (about 61 min on the 2-core AMD EPYC), see
# scripts/omniglot_lake_recipe.md.
HIDDEN=256 COMPUTE=bfloat16 PRETRAIN_EPOCHS=15 ANIL_ITERATIONS=50 bash scripts/train_bundled_omniglot.sh "$DATA" lake
