#!/usr/bin/env bash
# The station model `robust` (issue 12): the `fast` network and recipe trained on composited
# station frames (training/src/station.rs), with a `none` output for empty belts and trays and
# the other kinds of models/negatives.json as negatives, cut-outs varied, 40% of the products
# kept in the catalogue look; then evaluated, exported, calibrated (temperature scaling on val
# station frames, training/src/temperature.rs), quantized
# (int8 calibrated on half catalogue, half station frames) and scored on station frames of val
# and test into models/robust.json.
#   training/scripts/robust.sh DATA_DIR
# Resumable: a finished run is not retrained, a killed one resumes from its last checkpoint.
# ROBUST_EPOCHS, ROBUST_SEED, ROBUST_OUT and ROBUST_ARGS (extra `train` options) make variants;
# ROBUST_TRAIN_ONLY=1 stops after training.
set -euo pipefail
data=${1:?usage: robust.sh DATA_DIR}
bin=${TRAINING_BIN:-target/release/training}
# The shipped recipe (variant b of docs/REPORT.md's station-model table). Variant a:
#   ROBUST_EPOCHS=30 ROBUST_SEED=1 ROBUST_ARGS= ROBUST_OUT=runs/robust-a ROBUST_TRAIN_ONLY=1
epochs=${ROBUST_EPOCHS:-36}
seed=${ROBUST_SEED:-2}
extra=${ROBUST_ARGS---cut-jitter --catalogue-share 0.4}
out=${ROBUST_OUT:-runs/robust}
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

[[ -f models/negatives.json ]] || "$bin" negatives --data "$data"
resume=()
case $(run_state "$out" "$epochs") in
    done) echo "robust: $out finished already" ;;
    resume) resume=(--resume) ;;
esac
if [[ $(run_state "$out" "$epochs") != done ]]; then
    # shellcheck disable=SC2086  # ROBUST_ARGS is a list of options
    "$bin" train --data "$data" --name robust --out "$out" --epochs "$epochs" --batch-size 64 \
        --lr 0.004 --weight-decay 0.0005 --layers 48:4/4v,64v,96/2v,128v,160 --dropout 0.3 \
        --station --negatives models/negatives.json --label-smoothing 0.05 --warmup-epochs 1 \
        --seed "$seed" $extra "${resume[@]}"
fi
[[ -n ${ROBUST_TRAIN_ONLY:-} ]] && exit 0
"$bin" evaluate --data "$data" --run "$out"
"$bin" export --data "$data" --run "$out" --out models/robust.onnx
"$bin" calibrate --data "$data" --model models/robust.onnx
"$bin" quantize --data "$data" --model models/robust.onnx --out models/robust.int8.onnx \
    --calibration-images 300 --method percentile --form qlinear --seed 7
"$bin" station --data "$data" --model models/robust.onnx
