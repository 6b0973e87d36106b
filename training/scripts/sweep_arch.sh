#!/usr/bin/env bash
# Architecture sweep for the `fast` model (an architecture tract runs well): full 15-epoch
# runs of strided, pool-free networks with the tuned recipe, chosen on validation accuracy only
# (the best checkpoint's), then the winner is evaluated, exported as models/fast.onnx and
# quantized. Latency of each candidate: benches/experiments/arch_latency.py.
#   training/scripts/sweep_arch.sh DATA_DIR [VARIANT...]      (default: every variant below)
# Resumable: finished runs are skipped, a killed run resumes from its last checkpoint.
# PARALLEL=1 trains the variants two at a time (same total time on 2 cores, fewer restarts).
set -euo pipefail
data=${1:?usage: sweep_arch.sh DATA_DIR [VARIANT...]}
shift
bin=${TRAINING_BIN:-target/release/training}
epochs=${FAST_EPOCHS:-15}
declare -A variants=(
    [patch32]="--layers 32:4/4v,64v,96/2v,128v --dropout 0.2 --weight-decay 0.0001"
    [patch32-reg]="--layers 32:4/4v,64v,96/2v,128v --dropout 0.3 --weight-decay 0.0005"
    [patch48-wide]="--layers 48:4/4v,64v,96/2v,128v,160 --dropout 0.2 --weight-decay 0.0001"
    [patch48-wide-reg]="--layers 48:4/4v,64v,96/2v,128v,160 --dropout 0.3 --weight-decay 0.0005"
)
if [[ $# -eq 0 ]]; then
    names=(patch32 patch32-reg patch48-wide patch48-wide-reg)
else
    names=("$@")
fi

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

run() { # variant
    local out=runs/sweep-arch/$1 resume=()
    case $(run_state "$out" "$epochs") in
        done) echo "sweep: $1 finished already"; return ;;
        resume) resume=(--resume) ;;
    esac
    # shellcheck disable=SC2086
    "$bin" train --data "$data" --name fast --out "$out" --epochs "$epochs" --lr 0.004 \
        ${variants[$1]} "${resume[@]}" > "runs/sweep-arch/$1.log" 2>&1
}

mkdir -p runs/sweep-arch
if [[ ${PARALLEL:-0} == 1 ]]; then
    for n in "${names[@]}"; do run "$n" & done
    wait
else
    for n in "${names[@]}"; do run "$n"; done
fi
# Choose on the best epoch's validation accuracy (column 6 of history.csv).
best=$(for n in "${names[@]}"; do
    echo "$n $(cut -d, -f6 "runs/sweep-arch/$n/history.csv" | tail -n +2 | sort -gr | head -n 1)"
done | sort -k2,2gr | head -n 1 | cut -d' ' -f1)
echo "sweep: best architecture on validation: $best"
run_dir=runs/sweep-arch/$best
ln -sfn "sweep-arch/$best" runs/fast   # where `training report` finds the chosen run's log
"$bin" evaluate --data "$data" --run "$run_dir"
"$bin" export --data "$data" --run "$run_dir" --out models/fast.onnx
"$bin" quantize --data "$data" --model models/fast.onnx --out models/fast.int8.onnx \
    --calibration-images 300 --method percentile --form qlinear --seed 7
"$bin" quantize --data "$data" --model models/fast.onnx --out models/fast.qdq.onnx \
    --calibration-images 300 --method percentile --form qdq --seed 7
