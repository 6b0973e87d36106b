#!/usr/bin/env bash
# The multi-head model `multihead`: `robust`'s network and recipe (robust.sh,
# common.sh) with four extra heads on the same features, article type, colour (palette), gender
# and usage (training/src/heads.rs); then evaluated, exported (one ONNX output per head),
# calibrated, quantized, scored on station frames (class) and per head (`training heads`) into
# models/multihead.json.
#   training/scripts/multihead.sh DATA_DIR
# Resumable like robust.sh. MULTIHEAD_WEIGHT (loss weight of each head), MULTIHEAD_SEED and
# MULTIHEAD_OUT make variants; MULTIHEAD_TRAIN_ONLY=1 stops after training. The shipped model is
# the defaults (weight 0.15, seed 1); the variants of docs/REPORT.md were
#   MULTIHEAD_WEIGHT=0.5 MULTIHEAD_SEED=2 / MULTIHEAD_WEIGHT=0.15 MULTIHEAD_SEED=2
set -euo pipefail
data=${1:?usage: multihead.sh DATA_DIR}
bin=${TRAINING_BIN:-target/release/training}
seed=${MULTIHEAD_SEED:-1}
weight=${MULTIHEAD_WEIGHT:-0.15}
out=${MULTIHEAD_OUT:-runs/multihead}
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

train_station "$data" multihead "$out" 36 "$seed" 48:4/4v,64v,96/2v,128v,160 \
    --cut-jitter --catalogue-share 0.4 --heads articleType,colour,gender,usage \
    --head-weight "$weight"
[[ -n ${MULTIHEAD_TRAIN_ONLY:-} ]] && exit 0
finish_station "$data" multihead "$out"
"$bin" heads --data "$data" --model models/multihead.onnx
