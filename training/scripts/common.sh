# Shared by the sweep scripts. run_state RUN_DIR EPOCHS prints `done` (all epochs trained),
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
