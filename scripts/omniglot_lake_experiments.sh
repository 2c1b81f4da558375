#!/usr/bin/env bash
# The lake-model experiments of issue 19 (models/omniglot-lake-anil.md, "What was tried"): each trunk is
# pre-trained on the 25 training alphabets and compared on the 5 held-out background alphabets (val), never on
# the evaluation alphabets: 20-way 1-shot within one alphabet, nearest class mean (independent of the feature
# scale), 1,000 episodes, 15 queries per class, seed 0. Usage:
#   bash scripts/omniglot_lake_experiments.sh OMNIGLOT_DATA_ROOT [WORK_DIR]
# Idempotent (finished runs are skipped, stopped ones resume). On the 2-core CPU: about 25 min per 28x28 run (two
# at once, one thread each), 34 min for the 48x48 one (both cores), 23 min for 128 channels;
# 61 min for 256 channels (bfloat16); about 80 min for 56x56 with 5 blocks (float32, AVX2 EPYC); the two 128-channel objective runs were made two at once, one thread
# each (95 min); 61 min for 56x56 framed by the ink (float32, Intel Xeon, alone); 105 min for 256 channels framed by the ink (float32, Intel Xeon, partly shared); the ANIL step about 1 min; each test-time views or unpooled row 1-4 min. Needs a git clone (the previous bundled model comes from its history).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?Omniglot data root}
WORK=${2:-runs/lake-experiments}
PY=${PYTHON:-.venv/bin/python}
pretrain() {  # NAME EPOCHS INPUT ELASTIC [HIDDEN: CNN4 channels, 64] [COMPUTE: float32 or bfloat16] [OPTIONS...]
  local out="$WORK/$1/pretrained.pt" resume=""
  [ -f "$out" ] && return
  [ -f "$WORK/$1/pretrained.resume.pt" ] && resume="--resume"
  mkdir -p "$WORK/$1"
  $PY -m anil_engine pretrain --dataset omniglot --data-root "$DATA" --split-scheme lake --epochs "$2" \
    --batch-size 256 --lr 0.002 --ways 20 --seed 42 --device cpu --hidden-size "${5:-64}" --input-size "$3" \
    --elastic "$4" --compute "${6:-float32}" --out "$out" --quiet $resume "${@:7}"
}
anil_within() {  # NAME: 150 ANIL iterations, tasks and validation within one alphabet, best by validation kept
  [ -f "$WORK/$1/anil/best.pt" ] && return
  $PY -m anil_engine train --dataset omniglot --data-root "$DATA" --split-scheme lake \
    --init-from "$WORK/$1/pretrained.pt" --hidden-size 64 --input-size 28 --ways 20 --shots 1 --query 1 \
    --meta-batch-size 32 --meta-lr 0.0005 --fast-lr 0.1 --init-feature-norm 16 --adaptation-steps 5 \
    --iterations 150 --val-every 50 --val-episodes 300 --checkpoint-every 25 --seed 42 --device cpu \
    --episodes-within alphabet --out "$WORK/$1/anil" --quiet
}
val_within() {  # CHECKPOINT [EVAL OPTIONS] (default: nearest class mean)
  local ckpt=$1; shift
  $PY -m anil_engine eval --checkpoint "$ckpt" --data-root "$DATA" --split val --ways 20 --shots 1 --query 15 \
    --episodes 1000 --seed 0 --episodes-within alphabet --device cpu --json --quiet ${*:---method ncm} |
    $PY -c 'import json,sys; r=json.load(sys.stdin); print("%.2f ± %.2f" % (r["accuracy"], r["ci95"]))'
}
pretrain in28-e0 15 28 0
pretrain in28-elastic 15 28 0.05
pretrain in48-e0 12 48 0
pretrain in28-h128 15 28 0 128
pretrain in28-h128-bf16 15 28 0 128 bfloat16
pretrain in28-h256-bf16 15 28 0 256 bfloat16
pretrain in28-h128-cosine 15 28 0 128 float32 --classifier cosine
pretrain in28-h128-smooth 15 28 0 128 float32 --label-smoothing 0.1
# The ImageNet EfficientNet-Lite0 trunk fine-tuned whole (grey drawings in 3 equal channels), 56x56, float32 (about
# 45 min alone on a 2-core AVX2 EPYC, where bfloat16 is emulated and far slower).
pretrain lite0-in56 4 56 0 64 float32 --backbone efficientnet_lite0 --batch-size 64 --lr 0.001
# 56x56 with a fifth conv block, so the features are a 1x1 map as at 28x28 (the 48x48 run above ends at a 3x3 map,
# flattened); 10 epochs as the 64-channel model bundled at 0f964d9, its paired baseline below.
pretrain in56-l5 10 56 0 64 float32 --layers 5
# A second loss over only the classes of each character's own alphabet and rotation (its look-alikes as the only
# negatives), beside the loss over all classes; against the same recipe without it (in28-e0), paired.
pretrain in28-within1 15 28 0 64 float32 --within-loss 1
anil_within in28-e0
echo "| trunk (CNN4, 64 channels unless noted, pre-trained on the 25 training alphabets) | val, 20w1s within one alphabet (nearest class mean unless noted) |"
echo "|---|---|"
# The lake model bundled before the 128-channel one (64 channels, 10 epochs), from the repository's history.
OLD="$WORK/lake64-bundled-0f964d9.pt"
[ -f "$OLD" ] || git show 0f964d9:models/omniglot-lake-anil.pt > "$OLD"
echo "| previous bundled omniglot-lake-anil (28x28, 10 epochs) | $(val_within "$OLD") |"
echo "| same, its head (50 steps) | $(val_within "$OLD" --adaptation-steps 50) |"
echo "| same, head from the prototypes (50 steps) | $(val_within "$OLD" --adaptation-steps 50 --head-init proto) |"
# The 128-channel lake model bundled before the 256-channel one, from the repository's history.
OLD128="$WORK/lake128-bundled-27fa4fa.pt"
[ -f "$OLD128" ] || git show 27fa4fa:models/omniglot-lake-anil.pt > "$OLD128"
echo "| previous bundled omniglot-lake-anil (128 channels, 15 epochs), its head (50 steps) | $(val_within "$OLD128" --adaptation-steps 50) |"
# The 256-channel lake model (25 alphabets, bfloat16) bundled at a454fda: "the bundled trunk" of the rows below.
B="$WORK/lake256-bundled-a454fda.pt"
[ -f "$B" ] || git show a454fda:models/omniglot-lake-anil.pt > "$B"
echo "| bundled omniglot-lake-anil (256 channels, 15 epochs, bfloat16), its head (50 steps) | $(val_within "$B" --adaptation-steps 50) |"
echo "| 28x28, 15 epochs | $(val_within "$WORK/in28-e0/pretrained.pt") |"
echo "| same + ANIL within one alphabet (best.pt, head 50 steps) | $(val_within "$WORK/in28-e0/anil/best.pt" --adaptation-steps 50) |"
echo "| 28x28, 15 epochs, elastic 0.05 | $(val_within "$WORK/in28-elastic/pretrained.pt") |"
echo "| 48x48, 12 epochs | $(val_within "$WORK/in48-e0/pretrained.pt") |"
echo "| 128 channels, 28x28, 15 epochs | $(val_within "$WORK/in28-h128/pretrained.pt") |"
echo "| same, forward pass in bfloat16 (\`pretrain --compute bfloat16\`) | $(val_within "$WORK/in28-h128-bf16/pretrained.pt") |"
echo "| 256 channels, 28x28, 15 epochs, bfloat16 | $(val_within "$WORK/in28-h256-bf16/pretrained.pt") |"
# 256 against 128 channels (the previous bundled trunk) on the same episodes: the paired difference.
paired_any() {  # LABEL A B [compare_trunks.py options]: the paired difference (second minus first) as a table row;
  # within one alphabet, with its interval over the alphabets as the sample beside it
  local label=$1 a=$2 b=$3 out; shift 3
  out=$($PY scripts/compare_trunks.py "$a" "$b" --data-root "$DATA" --split val "$@")
  echo "| $label | $(echo "$out" | sed -n 's/^second - first, paired (same episodes): //p')$(echo "$out" |
    sed -n 's/^second - first, paired, the \([0-9]*\) alphabets as the sample: \(.*\)/ (the \1 alphabets as the sample: \2)/p') |"
}
paired_any "256 minus 128 channels, paired (same episodes)" "$OLD128" "$WORK/in28-h256-bf16/pretrained.pt" --within alphabet
paired() { paired_any "$1" "$2" "$3" --within alphabet "${@:4}"; }  # the same, within one alphabet
echo "| 128 channels, cosine classifier in pre-training (\`--classifier cosine\`) | $(val_within "$WORK/in28-h128-cosine/pretrained.pt") |"
paired "same, minus the bundled 128-channel trunk, paired" "$OLD128" "$WORK/in28-h128-cosine/pretrained.pt"
echo "| 128 channels, label smoothing 0.1 (\`--label-smoothing 0.1\`) | $(val_within "$WORK/in28-h128-smooth/pretrained.pt") |"
paired "same, minus the bundled 128-channel trunk, paired" "$OLD128" "$WORK/in28-h128-smooth/pretrained.pt"
# Test-time views: the bundled trunk's features averaged over fixed shifts (5 views) or shifts, rotations and
# scalings (9 views) of every image, against its plain features on the same episodes.
paired "bundled trunk, features averaged over 5 views (original + 4 one-pixel shifts), paired gain" "$B" "$B" --views-b 5
paired "bundled trunk, features averaged over 9 views (+ rotations of 8 degrees, scalings 0.9 and 1.1), paired gain" "$B" "$B" --views-b 9
# The ImageNet trunk fine-tuned on the training alphabets, against the bundled CNN4-256 trunk on the same episodes,
# on the plain features and on unit-length ones (--l2; the two trunks' features differ in scale and spread).
L=$WORK/lite0-in56/pretrained.pt
echo "| EfficientNet-Lite0 (ImageNet) fine-tuned whole, 56x56, 4 epochs | $(val_within "$L") |"
paired "same, minus the bundled 256-channel trunk, paired" "$B" "$L"
paired "same, both on L2-normalised features, paired" "$B" "$L" --l2
# The two trunks as an ensemble: the bundled trunk's unit-length features with the Lite0 trunk's beside them.
paired "bundled 256-channel trunk joined with the Lite0 trunk (unit-length features side by side), paired gain over it alone (--l2)" "$B" "$B" --l2 --join-b "$L"
# Feature transforms that need no training, on the bundled trunk (inductive: the support set only): the square
# root of every feature, and features centred on each episode's mean support feature, then unit length.
paired "bundled trunk, square root of its features and centred on each episode's support mean, paired gain" "$B" "$B" --sqrt-b --centre-b
paired "same, centred only, gain over unit-length features (--l2)" "$B" "$B" --l2 --centre-b
paired "same, square root only, gain over unit-length features (--l2)" "$B" "$B" --l2 --sqrt-b
paired "all of it: 9 views, the Lite0 trunk joined, square root, centred; gain over the bundled trunk alone" "$B" "$B" --views-b 9 --join-b "$L" --sqrt-b --centre-b
# Centred on a fixed vector instead, the training images' mean feature (SimpleShot's CL2N): it could be part of the
# exported trunk, where the support's mean changes with every episode.
paired "bundled trunk, square root, centred on the training split's mean feature, paired gain" "$B" "$B" --sqrt-b --base-centre-b
paired "same, centred on the training mean only, gain over unit-length features (--l2)" "$B" "$B" --l2 --base-centre-b
# 56x56 through 5 conv blocks against the 28x28 4-block trunk of the same recipe and epochs (bundled at 0f964d9).
echo "| 64 channels, 56x56, 5 conv blocks (\`--layers 5\`), 10 epochs | $(val_within "$WORK/in56-l5/pretrained.pt") |"
paired "same, minus the 28x28 4-block trunk of the same recipe (bundled at 0f964d9), paired" "$OLD" "$WORK/in56-l5/pretrained.pt"
# 256 channels at 56x56 through 5 blocks, the bundled recipe otherwise (pre-training, then ANIL, best by validation):
# about a minute on an NVIDIA H100 (DEVICE=cuda), many hours on these 2 cores. Against the bundled 28x28 trunk.
H56=$WORK/h256-in56-l5
HIDDEN=256 LAYERS=5 INPUT=56 COMPUTE=bfloat16 PRETRAIN_EPOCHS=15 ANIL_ITERATIONS=50 DEVICE=${DEVICE:-auto} \
  bash scripts/train_bundled_omniglot.sh "$DATA" lake "$H56"
echo "| 256 channels, 56x56, 5 conv blocks, the bundled recipe (ANIL's best) | $(val_within "$H56/anil/best.pt") |"
paired "same, minus the bundled 256-channel 28x28 trunk, paired" "$B" "$H56/anil/best.pt"
anil_from_bundled() {  # NAME ITERATIONS VAL_EVERY [TRAIN OPTIONS...]: the recipe's ANIL step from the bundled trunk
  local out="$WORK/$1" resume=""
  [ -f "$out/done" ] && return
  [ -f "$out/last.pt" ] && resume="--resume"
  $PY -m anil_engine train --dataset omniglot --data-root "$DATA" --split-scheme lake \
    --init-from "$B" --hidden-size 256 --input-size 28 --ways 20 --shots 1 --query 1 --meta-batch-size 32 \
    --meta-lr 0.0005 --fast-lr 0.1 --init-feature-norm 16 --adaptation-steps 5 --iterations "$2" --val-every "$3" \
    --val-episodes 300 --checkpoint-every 5 --seed 42 --device cpu --out "$out" --quiet $resume "${@:4}"
  touch "$out/done"
}
# What ANIL's mixed-protocol tasks do to this protocol: 50 iterations from the bundled trunk (its recipe's ANIL
# step; about 30 min alone on the 2-core CPU), the iteration-50 trunk against the bundled one (iteration 0).
A50=$WORK/anil50-from-bundled
anil_from_bundled anil50-from-bundled 50 50
paired "ANIL 50 iterations (mixed protocol) from the bundled trunk, minus the bundled trunk, paired" "$B" "$A50/last.pt"
# ANIL's tasks within one alphabet at one of its 4 rotations (4 times the task groups of unrotated alphabets), and
# ANIL from the prototype head start (Proto-MAML: the trunk learns through the support prototypes); 75 iterations
# each (about 25 min alone on the 2-core CPU; 150: 47 min), validated within one alphabet (300 episodes) every 25.
for n in 75 150; do
  anil_from_bundled rot-within-$n "$n" 25 --episodes-within rotated-alphabet --val-within alphabet --sampler fast
  paired "ANIL $n iterations within rotated alphabets from the bundled trunk, minus it, paired" "$B" "$WORK/rot-within-$n/last.pt"
done
B50="--adaptation-steps 50"
echo "| bundled trunk, head 50 steps | $(val_within "$B" $B50) | iteration 75 above, head 50 steps | $(val_within "$WORK/rot-within-75/last.pt" $B50) |"
anil_from_bundled proto-from-bundled 75 25 --head-init proto --val-within alphabet
paired "ANIL 75 iterations from the prototype head start, minus the bundled trunk, paired" "$B" "$WORK/proto-from-bundled/last.pt"
echo "| 28x28, 15 epochs, a second loss within each character's own alphabet and rotation (\`--within-loss 1\`) | $(val_within "$WORK/in28-within1/pretrained.pt") |"
paired "same, minus the same recipe without it (28x28, 15 epochs), paired" "$WORK/in28-e0/pretrained.pt" "$WORK/in28-within1/pretrained.pt"
# Every drawing framed by the square around its ink before it is resized (`--crop ink`): a small character keeps
# more of its strokes at 28x28, and every drawer's character sits at the same place and size. 64 channels against
# the same recipe uncropped (in28-e0), paired; 128 channels against the 128- and 256-channel trunks bundled before.
pretrain in28-ink 15 28 0 64 float32 --crop ink
pretrain in28-h128-ink 15 28 0 128 float32 --crop ink
echo "| 28x28, 15 epochs, every drawing framed by its ink (\`--crop ink\`) | $(val_within "$WORK/in28-ink/pretrained.pt") |"
paired "same, minus the same recipe uncropped (28x28, 15 epochs), paired" "$WORK/in28-e0/pretrained.pt" "$WORK/in28-ink/pretrained.pt"
echo "| 128 channels, 15 epochs, framed by the ink | $(val_within "$WORK/in28-h128-ink/pretrained.pt") |"
paired "same, minus the 128-channel trunk bundled before (uncropped), paired" "$OLD128" "$WORK/in28-h128-ink/pretrained.pt"
paired "same, minus the bundled 256-channel trunk (uncropped), paired" "$B" "$WORK/in28-h128-ink/pretrained.pt"
# The ink crop at 56x56 through 5 conv blocks (the features a 1x1 map, as at 28x28 with 4 blocks): does resolution
# still add once the drawing fills the frame? 64 channels, 15 epochs, against the 28x28 framed trunk, paired.
pretrain in56-l5-ink 15 56 0 64 float32 --layers 5 --crop ink
echo "| 64 channels, 56x56 through 5 conv blocks, framed by the ink | $(val_within "$WORK/in56-l5-ink/pretrained.pt") |"
paired "same, minus the 28x28 framed trunk of the same recipe, paired" "$WORK/in28-ink/pretrained.pt" "$WORK/in56-l5-ink/pretrained.pt"
# The test-time levers again on the framed 128-channel trunk (--crop ink), the lake model bundled at ce7776e.
F="$WORK/lake128ink-bundled-ce7776e.pt"
[ -f "$F" ] || git show ce7776e:models/omniglot-lake-anil.pt > "$F"
paired "128-channel framed trunk, features averaged over 9 views, paired gain" "$F" "$F" --views-b 9
paired "128-channel framed trunk, square root and centred on each episode's support mean, paired gain" "$F" "$F" --sqrt-b --centre-b
# The last block's 3x3 map before its max pool, flattened (where on the framed drawing each feature fired), against
# the pooled features, both unit length; and with the square root of the features too (against the pooled
# features' own row above: `--l2 --sqrt-b`).
paired "128-channel framed trunk, its last block unpooled (3x3 map flattened), unit length, paired gain" "$F" "$F" --l2 --unpooled-b
paired "same, square root of the pooled features, unit length, paired gain" "$F" "$F" --l2 --sqrt-b
paired "same, square root of the unpooled map, unit length, paired gain" "$F" "$F" --l2 --sqrt-b --unpooled-b
# The bundled lake recipe at 256 channels (float32; 6,303 s of pre-training on the 2-core Intel Xeon, partly shared),
# its pre-trained trunk against the 128-channel framed trunk, within one alphabet and on the mixed protocol (the
# lake model bundled since 2026-12-07 is this run's anil/best.pt).
L256=$WORK/h256-ink
HIDDEN=256 CROP=ink PRETRAIN_EPOCHS=15 ANIL_ITERATIONS=50 VAL_WITHIN=alphabet DEVICE=${DEVICE:-auto} \
  bash scripts/train_bundled_omniglot.sh "$DATA" lake "$L256"
echo "| 256 channels, 15 epochs, framed by the ink, its pre-trained trunk | $(val_within "$L256/pretrained.pt") |"
paired "same, minus the 128-channel framed trunk (ce7776e), paired" "$F" "$L256/pretrained.pt"
paired_any "same pair on the mixed protocol (20-way 1-shot, all validation characters), paired" "$F" "$L256/pretrained.pt"
echo "| same, ANIL's best.pt (validated within one alphabet), head 50 steps | $(val_within "$L256/anil/best.pt" --adaptation-steps 50) |"
