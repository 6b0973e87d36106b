#!/usr/bin/env bash
# The station loop once for real: real-photos-dev's real-train part stands in for a station's
# labelled collection and is fine-tuned into the built-in model (`training finetune`); the card
# (runs/finetune/*.finetune.json, copied to docs/data/finetune/) gives before/after on real-val,
# catalogue test and rendered station frames. ~15 minutes on 2 cores; resumable (rerun).
#   training/scripts/finetune-real.sh [DATA] [SEED]   (TRAINING_BIN: the training binary to use)
# FROM: the model to start from (default: the built-in model). The cards in docs/data/finetune/
# started from the built-in model before, lite0-distilled-112:
#   git show 9e6b83a:models/lite0-distilled-112.onnx > runs/lite0-distilled-112.onnx
#   FROM=runs/lite0-distilled-112.onnx training/scripts/finetune-real.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/fashion-product-images-small}
seed=${2:-1}
bin=${TRAINING_BIN:-target/release/training}
training/scripts/pretrained.sh
from=${FROM:-models/lite0-distilled-112-e16-seed2.onnx}
stem=$(basename "$from" .onnx)
out=runs/finetune/$stem-realtrain-s$seed.onnx
run=runs/finetune/$stem-realtrain-s$seed
resume=()
[[ -f $run/state.json ]] && resume=(--resume)
"$bin" finetune --data "$data" --from "$from" \
    --photos ../shared/data/real-photos-dev --real-split models/real-split.json \
    --seed "$seed" --check-photos 0 --run "$run" --out "$out" \
    --allow-worse "${resume[@]}"
mkdir -p docs/data/finetune
cp "${out%.onnx}.finetune.json" docs/data/finetune/
