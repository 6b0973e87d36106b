#!/usr/bin/env bash
# Store and forward under a flapping broker: `tag watch` replays the example photos (a verdict
# every few frames) for MINUTES (default 10) while Mosquitto is stopped and started every 30 s.
# Every 10 s a line: queue depth, published, dropped, broker connected (from /metrics), RSS and
# open files of `tag`. At the end, the verdicts written on stdout against those the subscriber
# received (ids, first arrivals), after the broker stayed up long enough to drain the queue.
# Needs mosquitto and mosquitto-clients.
#   benches/mqtt_soak.sh [MINUTES]          (TAG: the tag binary, default target/release/tag)
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian installs the broker in /usr/sbin.
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[[ -x $mosquitto ]] || { echo "needs mosquitto: apt-get install mosquitto" >&2; exit 3; }
minutes=${1:-10}
tag=${TAG:-${CARGO_TARGET_DIR:-target}/release/tag}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\npersistence_location %s/\n' \
    "$port" "$work" > "$work/mosquitto.conf"
broker() { "$mosquitto" -c "$work/mosquitto.conf" >/dev/null 2>&1 & echo $! > "$work/broker.pid"; }
broker
sleep 0.5
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'fashion-tagger/#' -q 1 -c -i soak-sub > "$work/received" &
sub=$!
"$tag" watch --source tests/fixtures/examples --repeat --fps 10 --threshold 0 --debounce 1 \
    --mqtt "mqtt://127.0.0.1:$port" --outbox "$work/outbox.redb" --http "$http" \
    > "$work/produced" 2> "$work/stderr" &
station=$!
trap 'kill $station $sub $(cat "$work/broker.pid") 2>/dev/null; rm -rf "$work"' EXIT
metric() { curl -s "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
printf '%6s %8s %9s %8s %9s %8s %6s\n' seconds queued published dropped connected rss_mib fds
start=$(date +%s)
end=$((start + minutes * 60))
next_flap=$((start + 30))
up=1
while (($(date +%s) < end)); do
    sleep 10
    now=$(date +%s)
    if ((now >= next_flap)); then
        if ((up)); then kill -TERM "$(cat "$work/broker.pid")"; up=0; else broker; up=1; fi
        next_flap=$((now + 30))
    fi
    rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$station/status")
    fds=$(ls "/proc/$station/fd" | wc -l)
    printf '%6d %8s %9s %8s %9s %8s %6s\n' $((now - start)) "$(metric tag_mqtt_queued)" \
        "$(metric tag_mqtt_published_total)" "$(metric tag_mqtt_dropped_total)" \
        "$(metric tag_mqtt_connected)" "$rss" "$fds"
done
((up)) || broker
# The broker stays up now: wait (at most 2 minutes) until the queue drained, then stop.
for _ in $(seq 120); do
    sleep 1
    [[ $(metric tag_mqtt_queued) == 0 && $(metric tag_mqtt_connected) == 1 ]] && break
done
kill -TERM $station
wait $station || true
sleep 2
grep 'published,' "$work/stderr" || true
produced=$(grep -c '"event":"verdict"' "$work/produced" || true)
python3 - "$work/received" "$produced" <<'PY'
import json, sys
seen, order = set(), []
for line in open(sys.argv[1]):
    v = json.loads(line)
    if "seq" in v and v["seq"] not in seen:
        seen.add(v["seq"]); order.append(v["seq"])
n = int(sys.argv[2])
print(f"produced {n} verdicts; received {len(seen)} distinct, in order: {order == sorted(order)}; "
      f"missing: {sorted(set(range(1, n + 1)) - seen)[:10]}")
PY
