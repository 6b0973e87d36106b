# Shared by the training scripts. run_state RUN_DIR EPOCHS prints `done` (all epochs trained),
# `resume` (a checkpoint to continue from) or `new`.
run_state() {
    if [[ ! -f $1/state.json ]]; then
        echo new
    elif grep -Eq "\"epochs_done\": *$2," "$1/state.json"; then
        echo done
    else
        echo resume
    fi
}

# The station recipe that robust.sh and multihead.sh share: composited station
# frames, `none` for empty belts, models/negatives.json as negatives, warm-up, label smoothing.
#   train_station DATA NAME OUT EPOCHS SEED LAYERS [more `train` options]
# Trains OUT, resumes it from its last checkpoint when killed, or says it finished already.
# STATION_LR sets the peak learning rate (default 0.004); STATION_NEGATIVES=none trains without
# the other kinds (an ablation).
train_station() {
    local data=$1 name=$2 out=$3 epochs=$4 seed=$5 layers=$6
    shift 6
    local bin=${TRAINING_BIN:-target/release/training}
    [[ -f models/negatives.json ]] || "$bin" negatives --data "$data"
    local resume=() negatives=(--negatives models/negatives.json)
    [[ ${STATION_NEGATIVES:-} == none ]] && negatives=()
    case $(run_state "$out" "$epochs") in
        done)
            echo "$name: $out finished already"
            return 0
            ;;
        resume) resume=(--resume) ;;
    esac
    "$bin" train --data "$data" --name "$name" --out "$out" --epochs "$epochs" --batch-size 64 \
        --lr "${STATION_LR:-0.004}" --weight-decay 0.0005 --layers "$layers" --dropout 0.3 \
        --station "${negatives[@]}" --label-smoothing 0.05 --warmup-epochs 1 \
        --seed "$seed" "$@" "${resume[@]}"
}

# After training: evaluate OUT, export models/NAME.onnx, calibrate it (temperature scaling on val
# station frames), quantize it (int8 calibrated on half catalogue, half station frames) and score
# it on station frames of val and test into models/NAME.json.
#   finish_station DATA NAME OUT
finish_station() {
    local data=$1 name=$2 out=$3
    local bin=${TRAINING_BIN:-target/release/training}
    "$bin" evaluate --data "$data" --run "$out"
    "$bin" export --data "$data" --run "$out" --out "models/$name.onnx"
    "$bin" calibrate --data "$data" --model "models/$name.onnx"
    "$bin" quantize --data "$data" --model "models/$name.onnx" --out "models/$name.int8.onnx" \
        --calibration-images 300 --method percentile --form qlinear --seed 7
    "$bin" station --data "$data" --model "models/$name.onnx"
}
