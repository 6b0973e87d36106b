#!/usr/bin/env bash
# Training throughput with station augmentation against without (the goal: >= 80%):
# one epoch of the `fast` recipe plain and with --station (compositing, JPEG, empty frames and
# negatives, built on rayon's workers off the training thread), each on an otherwise idle
# machine, images/s from each run's log.
#   training/scripts/throughput.sh DATA_DIR
set -euo pipefail
data=${1:?usage: throughput.sh DATA_DIR}
bin=${TRAINING_BIN:-target/release/training}
dir=$(mktemp -d)
common=(--data "$data" --epochs 1 --batch-size 64 --lr 0.004 --weight-decay 0.0005
    --layers 48:4/4v,64v,96/2v,128v,160 --dropout 0.3 --seed 1)
"$bin" train "${common[@]}" --name plain --out "$dir/plain" 2> "$dir/plain.log"
"$bin" train "${common[@]}" --name station --out "$dir/station" --station \
    --negatives models/negatives.json 2> "$dir/station.log"
ips() { cut -d, -f8 "$dir/$1/history.csv" | tail -n 1; }
plain=$(ips plain)
station=$(ips station)
awk -v p="$plain" -v s="$station" 'BEGIN { printf "images/s: plain %.0f, station %.0f, ratio %.2f\n", p, s, s / p }'
rm -rf "$dir"
