#!/usr/bin/env bash
# HPL (FP64 LU, the Top500 benchmark) on one core of this machine, for the device estimates in
# docs/BENCHMARKS.md: Debian's `hpcc` on OpenBLAS, one MPI process, one BLAS thread. Writes
# $CARGO_TARGET_DIR/hpl.json. Needs `apt-get install hpcc libopenblas0-pthread`.
#   benches/hpl.sh [N]   (matrix order; default 8000, 0.5 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-8000}
target=${CARGO_TARGET_DIR:-target}
command -v hpcc > /dev/null || { echo "hpl: hpcc not installed (apt-get install hpcc libopenblas0-pthread)" >&2; exit 3; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed -e "s/^1000 .*Ns$/$n         Ns/" -e 's/^80 .*NBs$/192          NBs/' \
    -e 's/^2 .*Ps$/1            Ps/' -e 's/^2 .*Qs$/1            Qs/' \
    /usr/share/doc/hpcc/examples/_hpccinf.txt > "$dir/hpccinf.txt"
(cd "$dir" && OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 hpcc > /dev/null 2>&1 || true)
gflops=$(awk -F= '/^HPL_Tflops=/ {printf "%.3f", $2 * 1000}' "$dir/hpccoutf.txt")
[[ -n $gflops ]] || { echo "hpl: no HPL result in hpcc's output" >&2; tail -20 "$dir/hpccoutf.txt" >&2; exit 1; }
printf '{"gflops": %s, "n": %s, "benchmark": "HPL in hpcc %s (Debian), OpenBLAS, 1 process, 1 thread"}\n' \
    "$gflops" "$n" "$(dpkg-query -W -f='${Version}' hpcc)" > "$target/hpl.json"
echo "HPL on one core: $gflops GFLOP/s (N=$n) -> $target/hpl.json"
