#!/usr/bin/env bash
# Real photos end to end: the shipped models scored on real-val and real-train (their cards'
# `real` sections, confusion pictures, docs/img/real-photos.png), the pretrained-backbone probes
# (runs/probe/, summaries copied into docs/data/probe by `training report`), then the report.
#   training/scripts/real.sh [DATA]        (TRAINING_BIN: the training binary to use)
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/fashion-product-images-small}
bin=${TRAINING_BIN:-target/release/training}
training/scripts/pretrained.sh
probe() {
    local name=$1
    shift
    [[ -f runs/probe/$name.onnx ]] || "$bin" probe --data "$data" --name "$name" \
        --out "runs/probe/$name.onnx" "$@"
}
# Catalogue photos and station frames only: what generalises to real photos.
probe lite0-probe
# Catalogue photos only: what station frames cost and buy.
probe lite0-probe-catalogue --views catalogue
probe lite0-probe-160-catalogue --views catalogue --resize 160x120
# The same head also trained on real-train photos (each 3 times): adaptation.
probe lite0-probe-realtrain --real-train-repeat 3
"$bin" real --model models/baseline.onnx models/tuned.onnx models/augmented.onnx \
    models/fast.onnx models/robust.onnx models/multihead.onnx
"$bin" real --model models/fast.onnx models/robust.onnx models/multihead.onnx \
    runs/probe/lite0-probe.onnx runs/probe/lite0-probe-realtrain.onnx \
    --page docs/img/real-photos.png
"$bin" report
