#!/usr/bin/env bash
# Publishing to a broker, measured: starts a Mosquitto on a free loopback port and runs
# examples/mqtt_throughput.rs (the outbox's durable write per verdict; verdicts per second to
# the broker, all acknowledged). Needs mosquitto (apt-get install mosquitto).
#   benches/mqtt.sh [N]          (N verdicts, default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian installs the broker in /usr/sbin.
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[[ -x $mosquitto ]] || { echo "needs mosquitto: apt-get install mosquitto" >&2; exit 3; }
n=${1:-2000}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$work/mosquitto.conf"
"$mosquitto" -c "$work/mosquitto.conf" >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
sleep 0.5
cargo run --release --quiet --example mqtt_throughput -- "mqtt://127.0.0.1:$port" "$n" "$work/outbox"
