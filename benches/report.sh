#!/usr/bin/env bash
# Runs every benchmark once and writes docs/BENCHMARKS.md from the results.
# With ORT_DYLIB_PATH set (libonnxruntime.so, e.g. from `pip install onnxruntime`), onnxruntime
# is measured too. Run on an idle machine: other load shows up in every figure.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
if [[ -n ${ORT_DYLIB_PATH:-} ]]; then features=(--features ort); fi
target=${CARGO_TARGET_DIR:-target}
rm -rf "$target/criterion"
cargo build --release --bin tag --example profile --example bench_report
# The station binary (no ONNX parser, no built-in model), measured against the release one.
cargo build --profile device --no-default-features -p fashion-tagger --bin tag
# The kernel-floor models (one 1-GFLOP conv, float and int8), written by the training crate.
export BENCH_FLOOR_DIR="$target/kernel-floor"
cargo run --release -p training --example kernel_floor -- "$BENCH_FLOOR_DIR"
cargo bench "${features[@]}" --bench preprocess --bench inference
# HPL on one core, for the Pi and Orin estimates (skipped without Debian's hpcc).
rm -f "$target/hpl.json"
benches/hpl.sh 8000 || echo "HPL not run: no device estimates in this report" >&2
"$target/release/examples/bench_report" "$target/criterion" docs/BENCHMARKS.md
