#!/usr/bin/env bash
# Learning-rate sweep for the tuned model: short runs of the baseline network, each with
# its own full cosine schedule, scored on the validation split only; then the learning rate with
# the best final validation accuracy is trained fully (15 epochs) as `tuned`.
#   training/scripts/sweep_lr.sh DATA_DIR [LR...]      (default LRs: 0.0005 0.001 0.002 0.004)
# Resumable: finished runs are skipped, a killed run resumes from its last checkpoint.
set -euo pipefail
data=${1:?usage: sweep_lr.sh DATA_DIR [LR...]}
shift
if [[ $# -eq 0 ]]; then lrs=(0.0005 0.001 0.002 0.004); else lrs=("$@"); fi
bin=${TRAINING_BIN:-target/release/training}
epochs=${SWEEP_EPOCHS:-5}
full_epochs=${TUNED_EPOCHS:-15}

# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

run() { # name out epochs lr
    local resume=()
    case $(run_state "$2" "$3") in
        done) echo "sweep: $1 finished already"; return ;;
        resume) resume=(--resume) ;;
    esac
    "$bin" train --data "$data" --name "$1" --out "$2" --epochs "$3" --lr "$4" "${resume[@]}"
}

for lr in "${lrs[@]}"; do
    run "sweep-lr-$lr" "runs/sweep-lr/lr-$lr" "$epochs" "$lr"
done
# Choose on the last epoch's validation accuracy (column 6 of history.csv).
best=$(for lr in "${lrs[@]}"; do
    echo "$lr $(tail -n 1 "runs/sweep-lr/lr-$lr/history.csv" | cut -d, -f6)"
done | sort -k2,2gr | head -n 1 | cut -d' ' -f1)
echo "sweep: best learning rate on validation: $best"
run tuned runs/tuned "$full_epochs" "$best"
