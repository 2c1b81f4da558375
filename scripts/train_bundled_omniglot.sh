#!/usr/bin/env bash
# Reproduces the bundled Omniglot models (see models/*.md): pre-train the trunk,
# meta-train ANIL from it, write the model card. Usage:
#   bash scripts/train_bundled_omniglot.sh DATA_ROOT SCHEME [WORK_DIR]
# SCHEME: vinyals or lake. Idempotent: finished steps are skipped, an interrupted
# pre-training resumes from its .resume.pt, an ANIL run from its last.pt. Env: PRETRAIN_EPOCHS (15), ANIL_ITERATIONS (1000),
# HIDDEN (CNN4 channels, 64), LAYERS (CNN4 conv blocks, 4; 5 for INPUT=56), INPUT (input size in pixels, 28), WITHIN (alphabet: ANIL's training and
# validation tasks within one alphabet; default the whole split), VAL_WITHIN (alphabet: only the validation tasks,
# which choose best.pt, within one alphabet; rotated-alphabet for WITHIN: one alphabet at one rotation), VAL_METHOD
# (ncm: best.pt by the trunk's nearest class mean; default the head's adaptation), COMPUTE (float32 or bfloat16: the pre-training's forward
# pass), DEVICE (auto: a CUDA GPU when there is one), BACKBONE (cnn4, or efficientnet_lite0: the ImageNet trunk
# fine-tuned whole; its features are not rescaled and ANIL meta-trains its head), BATCH (256) and LR (0.002): the
# pre-training's batch and peak learning rate, TRAIN_SPLITS (train+val: a final model's trunk learns the validation
# classes too; nothing is validated then, so ANIL_ITERATIONS=0 packages that trunk itself), CROP (ink: every drawing
# framed by the square around its ink before it is resized; none), MIRROR (1: `pretrain --mirror-classes`, every
# class's mirror image a class of its own). The bundled vinyals model:
#   HIDDEN=256 PRETRAIN_EPOCHS=20 ANIL_ITERATIONS=300 DEVICE=cuda bash scripts/train_bundled_omniglot.sh DATA vinyals
set -euo pipefail
DATA=${1:?data root (folder with images_background.npz or images_background/)}
SCHEME=${2:?vinyals or lake}
WORK=${3:-runs/omniglot-$SCHEME}
PY=${PYTHON:-.venv/bin/python}
ITER=${ANIL_ITERATIONS:-1000}
DEVICE=${DEVICE:-auto}
HIDDEN=${HIDDEN:-64}
LAYERS=${LAYERS:-4}
INPUT=${INPUT:-28}
COMPUTE=${COMPUTE:-float32}
BACKBONE=${BACKBONE:-cnn4}
NORM=16  # CNN4's features rescaled to this mean norm; a pretrained backbone's cannot be (ReLU6)
[ "$BACKBONE" = cnn4 ] || NORM=0
MIRROR_OPT=""; [ "${MIRROR:-0}" = 1 ] && MIRROR_OPT=--mirror-classes
mkdir -p "$WORK"
if [ ! -f "$WORK/pretrained.pt" ]; then
  PRE_RESUME=""
  [ -f "$WORK/pretrained.resume.pt" ] && PRE_RESUME="--resume"
  $PY -m anil_engine pretrain --dataset omniglot --data-root "$DATA" --split-scheme "$SCHEME" \
    --epochs "${PRETRAIN_EPOCHS:-15}" --batch-size "${BATCH:-256}" --lr "${LR:-0.002}" --backbone "$BACKBONE" --ways 20 --seed 42 --device "$DEVICE" --hidden-size "$HIDDEN" --layers "$LAYERS" --input-size "$INPUT" \
    --crop "${CROP:-none}" --compute "$COMPUTE" --train-splits "${TRAIN_SPLITS:-train}" $MIRROR_OPT --out "$WORK/pretrained.pt" $PRE_RESUME
fi
RESUME=""
[ -f "$WORK/anil/last.pt" ] && RESUME="--resume"
$PY -m anil_engine train --dataset omniglot --data-root "$DATA" --split-scheme "$SCHEME" \
  --init-from "$WORK/pretrained.pt" --backbone "$BACKBONE" --hidden-size "$HIDDEN" --layers "$LAYERS" --input-size "$INPUT" --crop "${CROP:-none}" --ways 20 --shots 1 --query 1 --meta-batch-size 32 \
  --meta-lr 0.0005 --fast-lr 0.1 --init-feature-norm "$NORM" --adaptation-steps 5 --iterations "$ITER" --val-every 50 \
  --val-episodes 300 --checkpoint-every 25 --seed 42 --device "$DEVICE" ${WITHIN:+--episodes-within "$WITHIN"} ${VAL_WITHIN:+--val-within "$VAL_WITHIN"} \
  ${VAL_METHOD:+--val-method "$VAL_METHOD"} \
  --out "$WORK/anil" $RESUME
