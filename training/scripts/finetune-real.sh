#!/usr/bin/env bash
# The station loop once for real: real-photos-dev's real-train part stands in for a station's
# labelled collection and is fine-tuned into the built-in model (`training finetune`); the card
# (runs/finetune/*.finetune.json, copied to docs/data/finetune/) gives before/after on real-val,
# catalogue test and rendered station frames. ~15 minutes on 2 cores; resumable (rerun).
#   training/scripts/finetune-real.sh [DATA] [SEED]   (TRAINING_BIN: the training binary to use)
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/fashion-product-images-small}
seed=${2:-1}
bin=${TRAINING_BIN:-target/release/training}
training/scripts/pretrained.sh
out=runs/finetune/lite0-distilled-112-realtrain-s$seed.onnx
resume=()
[[ -f runs/finetune/realtrain-s$seed/state.json ]] && resume=(--resume)
"$bin" finetune --data "$data" --from models/lite0-distilled-112.onnx \
    --photos ../shared/data/real-photos-dev --real-split models/real-split.json \
    --seed "$seed" --check-photos 0 --run "runs/finetune/realtrain-s$seed" --out "$out" \
    --allow-worse "${resume[@]}"
mkdir -p docs/data/finetune
cp "${out%.onnx}.finetune.json" docs/data/finetune/
