#!/usr/bin/env bash
# UDP flood of requests outside dialogs (OPTIONS, REGISTER, INVITE …) from many loopback
# sources while one echo call is in progress. Prints dialerd's RSS before/during/after, the
# rate achieved, /healthz latency, the shed counters and whether the call survived. A
# benchmark, never part of the test suite.
#
#   sip-scenarios/load/flood.sh [RATE=50000] [SECONDS=60] [METHOD=OPTIONS] [SOURCES=200]
#   DIALERD=path/to/dialerd to measure another build (default target/release/dialerd).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-50000}
SECONDS_=${2:-60}
METHOD=${3:-OPTIONS}
SOURCES=${4:-200}
PORT=${SIP_PORT:-5162}
HTTP=${HTTP_PORT:-9162}
BIN=${DIALERD:-target/release/dialerd}

[ -x "$BIN" ] || cargo build --release
work=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; rm -rf "$work"' EXIT
# The loopback trunk (127.0.0.1) places the held call; the flood comes from 127.0.0.2 and up.
cat >"$work/dialerd.toml" <<EOF
state_dir = "$work/state"
[log]
level = "warn"
[http]
listen = "127.0.0.1:$HTTP"
[sip]
listen = ["127.0.0.1:$PORT"]
echo_number = "1000"
session_expires = "0s"
[media]
rtp_timeout = "30s"
[[trunks]]
name = "loopback"
host = "127.0.0.1"
inbound_from = ["127.0.0.1"]
keepalive = "0s"
EOF
"$BIN" run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
python3 sip-scenarios/load/flood.py "$daemon" "$PORT" "$HTTP" "$RATE" "$SECONDS_" "$METHOD" "$SOURCES"
kill -0 $daemon 2>/dev/null && echo "dialerd           still running" || echo "dialerd           DIED (see log below)"
grep -ci panic "$work/dialerd.log" | xargs echo "panics in log    "
