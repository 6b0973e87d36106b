#!/usr/bin/env bash
# Soak test (not in CI): `tag watch` against a hostile MJPEG camera mix
# (scripts/hostile_mjpeg.py: good frames, dripped status line, endless header, a part without
# newlines, garbage, 404, closed connections, truncated JPEGs) for SOAK_SECONDS (default 600),
# sampling RSS and open file descriptors every 10 s. Ends with a verdict: flat or not.
#   scripts/soak-mjpeg.sh            # needs python3 and a release build of tag
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
port=${SOAK_PORT:-18081}
tag=${TAG_BIN:-target/release/tag}
[[ -x $tag ]] || cargo build --release --bin tag
python3 scripts/hostile_mjpeg.py "$port" tests/fixtures/examples/shoes.jpg &
server=$!
log=$(mktemp)
trap 'kill $server 2>/dev/null || true; kill $watch 2>/dev/null || true; rm -f $log' EXIT
sleep 1
"$tag" watch --source "http://127.0.0.1:$port/" --format jsonl --stats-interval 60 \
    >/dev/null 2>"$log" &
watch=$!
printf '%8s %10s %6s\n' seconds rss_kib fds
samples=()
for ((t = 10; t <= seconds; t += 10)); do
    sleep 10
    if ! kill -0 "$watch" 2>/dev/null; then
        echo "tag watch exited early:"; tail -20 "$log"; exit 1
    fi
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$watch/status")
    fds=$(ls "/proc/$watch/fd" | wc -l)
    printf '%8d %10d %6d\n' "$t" "$rss" "$fds"
    samples+=("$rss $fds")
done
kill -INT "$watch"
wait "$watch" || true
echo "reconnects: $(grep -c 'reconnected to' "$log"), losses: $(grep -c ' lost: ' "$log")"
# Flat: the last RSS within 20% (+4 MiB) of the sample after the first minute, fds within 2.
read -r rss0 fd0 <<<"${samples[5]:-${samples[0]}}"
read -r rss1 fd1 <<<"${samples[-1]}"
if ((rss1 <= rss0 * 12 / 10 + 4096 && fd1 <= fd0 + 2)); then
    echo "flat: RSS $rss0 -> $rss1 KiB, fds $fd0 -> $fd1"
else
    echo "NOT flat: RSS $rss0 -> $rss1 KiB, fds $fd0 -> $fd1"; exit 1
fi
