#!/usr/bin/env bash
# `tag` for the stations' CPUs (Raspberry Pi 4/5, Jetson Orin Nano: aarch64), built and run here.
#
# On a Debian 12 x86_64 machine, with Debian packages and crates.io only (rustup cannot download
# targets offline): Debian's rustc-web/cargo-web (1.96, bookworm-security) with the arm64 standard
# library through multiarch, gcc-aarch64-linux-gnu as the linker, qemu-user to run the result.
# Then, under `qemu-aarch64 -cpu cortex-a76` (Pi 5, close to Orin) and `-cpu cortex-a72` (Pi 4):
#   - the example photos, the fixture dataset and the station frames get the same labels as the
#     x86_64 build, with every confidence within AARCH64_TOLERANCE (default 0.002), for the
#     built-in model and the int8 and station models;
#   - `tag watch` replays a folder of frames;
#   - the runtime's CLI tests (tests/tag_cli.rs; watch_cli.rs and watch_station.rs with AARCH64_WATCH_TESTS=1) run against the aarch64
#     binary (TAG_BIN + TAG_RUNNER, tests/common/mod.rs).
# Timings under emulation mean nothing: `tag bench` on the device is the figure that counts
# (firmware-config/README.md). qemu's default `-cpu max` would pick SVE kernels no Pi or Jetson
# has, so the CPU is always named. Do not add `-L /usr/aarch64-linux-gnu`: that loader does not
# match the multiarch libc6:arm64 and the program spins in thread creation.
#
#   scripts/aarch64.sh                 # release profile (what CI runs)
#   AARCH64_PROFILE=device scripts/aarch64.sh   # the station binary: no ONNX parser, no built-in
#                                               # model; it runs the models' NNEF forms, written
#                                               # here by the x86_64 `tag convert`
# Exit codes: 0 all checks passed, 1 a check failed, 3 this machine cannot run it (no packages
# and no root or no registry to install them from): said on stderr, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${AARCH64_PROFILE:-release}
tolerance=${AARCH64_TOLERANCE:-0.002}
target=aarch64-unknown-linux-gnu
cpus=(cortex-a76 cortex-a72)
packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 libc6:arm64 gcc-aarch64-linux-gnu qemu-user)

cannot() {
    echo "aarch64 check SKIPPED: $*" >&2
    exit 3
}

missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        cannot "missing Debian packages ${missing[*]}; as root: dpkg --add-architecture arm64 && apt-get update && apt-get install ${missing[*]}"
    fi
    echo "installing ${missing[*]}" >&2
    dpkg --add-architecture arm64
    apt-get update -qq || cannot "apt-get update failed (no route to Debian's mirrors?)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        cannot "apt-get install ${missing[*]} failed"
fi
rustc_version=$(/usr/bin/rustc --version)
echo "cross toolchain: $rustc_version, $(aarch64-linux-gnu-gcc --version | head -1)"

# Debian's compiler, not rustup's proxy that comes first on PATH; its own target directory so
# the two compilers' artifacts never mix.
host_target=${CARGO_TARGET_DIR:-target}
cross_dir=${AARCH64_TARGET_DIR:-$host_target/aarch64-debian}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
started=$(date +%s)
features=()
[[ $profile == device ]] && features=(--no-default-features -p fashion-tagger)
RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$cross_dir" /usr/bin/cargo build --locked --quiet \
    --profile "$profile" --target "$target" --bin tag "${features[@]}"
arm="$cross_dir/$target/$profile/tag"
echo "built $arm in $(($(date +%s) - started)) s: $(stat -c %s "$arm") bytes; $(file -b "$arm" | cut -d, -f1-2)"

# Did tract-linalg's build script compile the SDOT (dot-product) int8 kernel? It probes whether
# the cross assembler accepts `sdot` and sets the cfg `tract_arm64_dotprod` only then.
linalg_out=$(ls -td "$cross_dir/$target/$profile"/build/tract-linalg-*/output 2>/dev/null | head -1 || true)
if [[ -n $linalg_out ]] && grep -q 'rustc-cfg=tract_arm64_dotprod' "$linalg_out"; then
    echo "tract-linalg: SDOT int8 kernel built (cfg tract_arm64_dotprod)"
else
    echo "tract-linalg: SDOT int8 kernel NOT built (${linalg_out:-no build output found})"
fi

x86="$host_target/release/tag"
if [[ ! -x $x86 ]]; then
    cargo build --release --quiet --bin tag
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
compare() { # name file_x86 file_arm
    python3 - "$1" "$2" "$3" "$tolerance" <<'EOF' || failed=1
import json, sys
name, a, b, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
x = [json.loads(l) for l in open(a)]
y = [json.loads(l) for l in open(b)]
bad, worst = [], 0.0
if len(x) != len(y):
    bad.append(f"{len(x)} results on x86_64, {len(y)} on aarch64")
for p, q in zip(x, y):
    if p.get("path") != q.get("path") or p.get("label") != q.get("label"):
        bad.append(f"{p.get('path')}: {p.get('label')} vs {q.get('path')}: {q.get('label')}")
    sp = {t["label"]: t["score"] for t in p.get("top", [])}
    for t in q.get("top", []):
        if t["label"] in sp:
            worst = max(worst, abs(t["score"] - sp[t["label"]]))
if worst > tol:
    bad.append(f"largest confidence difference {worst:.5f} > {tol}")
print(f"  {name}: {len(y)} results, labels {'differ' if bad else 'identical'}, "
      f"largest confidence difference {worst:.5f}")
for m in bad[:10]:
    print(f"    {m}")
sys.exit(1 if bad else 0)
EOF
}

inputs=(tests/fixtures/examples tests/fixtures/dataset/images tests/fixtures/frames)
for cpu in "${cpus[@]}"; do
    run=(qemu-aarch64 -cpu "$cpu" "$arm")
    echo "qemu-aarch64 -cpu $cpu: $("${run[@]}" --version)"
    for model in builtin models/fast.int8.onnx models/robust.onnx models/robust.int8.onnx; do
        opts=(--format jsonl --top-k 3)
        [[ $model != builtin ]] && opts+=(--model "$model")
        "$x86" "${opts[@]}" "${inputs[@]}" >"$work/x86.jsonl"
        if [[ $profile == device ]]; then
            # The station binary runs the NNEF form the x86_64 build writes.
            onnx=$model
            [[ $model == builtin ]] && onnx=models/lite0-distilled-112-e16-seed2.onnx
            nnef="$work/$(basename "$onnx" .onnx).nnef.tgz"
            [[ -f $nnef ]] || "$x86" convert "$onnx" "$nnef" >/dev/null
            opts=(--format jsonl --top-k 3 --model "$nnef")
        fi
        "${run[@]}" "${opts[@]}" "${inputs[@]}" >"$work/arm.jsonl"
        compare "$cpu $model" "$work/x86.jsonl" "$work/arm.jsonl"
    done
    # A station replaying a folder (the passby sequence), as on the device.
    station_model=models/robust.onnx
    [[ $profile == device ]] && station_model="$work/robust.nnef.tgz"
    if "${run[@]}" watch --source tests/fixtures/frames/passby --model "$station_model" \
        --format jsonl >"$work/watch.jsonl" 2>"$work/watch.err"; then
        echo "  $cpu tag watch: replayed tests/fixtures/frames/passby, $(wc -l <"$work/watch.jsonl") verdicts"
    else
        echo "  $cpu tag watch FAILED:" && cat "$work/watch.err" && failed=1
    fi
done

# The runtime's CLI tests against the aarch64 binary (the test harness itself runs on x86_64).
# AARCH64_WATCH_TESTS=1 adds tests/watch_cli.rs and tests/watch_station.rs (about 3 minutes under emulation: a soak run).
# The station binary reads NNEF only, and these tests give it ONNX files: they run against the
# release binary.
if [[ $profile == device ]]; then
    echo "CLI tests: not run against the station binary (it reads no ONNX; its labels and confidences were compared above)"
    ((failed)) && { echo "aarch64 check FAILED" >&2; exit 1; }
    echo "aarch64 check passed (timings under emulation are not measurements; see firmware-config/README.md)"
    exit 0
fi
tests=(--test tag_cli)
[[ -n ${AARCH64_WATCH_TESTS:-} ]] && tests+=(--test watch_cli --test watch_station)
echo "CLI tests (${tests[*]}) with TAG_BIN=$arm TAG_RUNNER='qemu-aarch64 -cpu cortex-a76'"
TAG_BIN="$(realpath "$arm")" TAG_RUNNER="qemu-aarch64 -cpu cortex-a76" \
    cargo test --release --quiet -p fashion-tagger "${tests[@]}" || failed=1

if ((failed)); then
    echo "aarch64 check FAILED" >&2
    exit 1
fi
echo "aarch64 check passed (timings under emulation are not measurements; see firmware-config/README.md)"
