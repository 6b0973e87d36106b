#!/usr/bin/env bash
# The station model `robust`: trained on composited station frames
# (training/src/station.rs), with a `none` output for empty belts and trays and the other kinds
# of models/negatives.json as negatives, cut-outs varied, 40% of the products kept in the
# catalogue look; then evaluated, exported, calibrated (temperature scaling on val station
# frames, training/src/temperature.rs), quantized (int8 calibrated on half catalogue, half
# station frames) and scored on station frames of val and test into models/robust.json
# (common.sh has the recipe).
#   training/scripts/robust.sh DATA_DIR
# Resumable: a finished run is not retrained, a killed one resumes from its last checkpoint.
# ROBUST_EPOCHS, ROBUST_SEED, ROBUST_LAYERS, ROBUST_OUT and ROBUST_ARGS (extra `train` options)
# make variants; ROBUST_TRAIN_ONLY=1 stops after training.
set -euo pipefail
data=${1:?usage: robust.sh DATA_DIR}
# The shipped recipe (variant b of docs/REPORT.md's station-model table). Variant a:
#   ROBUST_EPOCHS=30 ROBUST_SEED=1 ROBUST_ARGS= ROBUST_OUT=runs/robust-a ROBUST_TRAIN_ONLY=1
# Variants i and j (wider last stages, 30 epochs to stay within 45 minutes), seeds 1 and 2:
#   ROBUST_EPOCHS=30 ROBUST_LAYERS=48:4/4v,64v,128/2v,192v,256 ROBUST_SEED=1 \
#   ROBUST_OUT=runs/robust-wide-s1 ROBUST_TRAIN_ONLY=1
# Variants m and n (fine-tuned: started from runs/fast-s1, a catalogue run of fast's recipe,
#   `training train --name fast --out runs/fast-s1 --epochs 15 --lr 0.004 --dropout 0.3
#   --weight-decay 0.0005 --layers 48:4/4v,64v,96/2v,128v,160 --seed 1`; 24 station epochs so the
#   two stages stay within 45 minutes), seeds 1 and 2:
#   STATION_LR=0.002 ROBUST_EPOCHS=24 ROBUST_SEED=1 ROBUST_OUT=runs/robust-ft-s1 \
#   ROBUST_ARGS="--cut-jitter --catalogue-share 0.4 --init-from runs/fast-s1" ROBUST_TRAIN_ONLY=1
# Variants o and p (no other kinds as negatives), seeds 1 and 2:
#   STATION_NEGATIVES=none ROBUST_SEED=1 ROBUST_OUT=runs/robust-noneg-s1 ROBUST_TRAIN_ONLY=1
epochs=${ROBUST_EPOCHS:-36}
seed=${ROBUST_SEED:-2}
layers=${ROBUST_LAYERS:-48:4/4v,64v,96/2v,128v,160}
extra=${ROBUST_ARGS---cut-jitter --catalogue-share 0.4}
out=${ROBUST_OUT:-runs/robust}
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

# shellcheck disable=SC2086  # ROBUST_ARGS is a list of options
train_station "$data" robust "$out" "$epochs" "$seed" "$layers" $extra
[[ -n ${ROBUST_TRAIN_ONLY:-} ]] && exit 0
finish_station "$data" robust "$out"
