#!/usr/bin/env bash
# Calls-per-second load: SIPp UAC → dialerd's echo route with short calls, at a fixed rate.
# Prints successful/failed calls, retransmissions, and CPU of both sides; a benchmark, never
# part of the test suite.
#
#   sip-scenarios/load/run.sh [RATE=500] [CALLS=RATE*20] [HOLD_MS=100]
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-500}
CALLS=${2:-$((RATE * 20))}
HOLD=${3:-100}
PORT=${SIP_PORT:-5160}
HTTP=${HTTP_PORT:-9160}

[ -x target/release/dialerd ] || cargo build --release
work=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; rm -rf "$work"' EXIT

DIALERD__SIP__LISTEN=127.0.0.1:$PORT DIALERD__HTTP__LISTEN=127.0.0.1:$HTTP \
DIALERD__SIP__ECHO_NUMBER=1000 DIALERD__SIP__MAX_CALLS=100000 DIALERD__LOG__LEVEL=warn \
DIALERD__STATE_DIR="$work/state" DIALERD__SIP__SESSION_EXPIRES=0s \
DIALERD__MEDIA__RTP_PORT_MIN=10000 DIALERD__MEDIA__RTP_PORT_MAX=65000 DIALERD__MEDIA__RTP_TIMEOUT=0s \
  target/release/dialerd run --config conf/dialerd.toml 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 50); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done

clk=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
idle_rss=$(rss_kib $daemon)
d0=$(cpu $daemon)
start=$(date +%s.%N)
(cd "$work" && sipp -sf "$OLDPWD/sip-scenarios/load/uac_short_calls.xml" -i 127.0.0.1 \
   -r "$RATE" -m "$CALLS" -d "$HOLD" -l 100000 -max_socket 100000 -nostdin \
   -trace_stat -fd 1 -timeout 600s 127.0.0.1:$PORT >"$work/sipp.out" 2>&1) &
sipp_pid=$!
peak_rss=0; sipp_cpu=0
while kill -0 $sipp_pid 2>/dev/null; do
  r=$(rss_kib $daemon); [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  s=$(pgrep -n -x sipp || true); [ -n "$s" ] && sipp_cpu=$(cpu "$s" 2>/dev/null || echo "$sipp_cpu")
  sleep 0.2
done
wait $sipp_pid || true
end=$(date +%s.%N)
d1=$(cpu $daemon)
sleep ${SETTLE:-2}
after_rss=$(rss_kib $daemon)
stats=$(ls "$work"/*_.csv 2>/dev/null | head -1 || true)
if [ -n "$stats" ]; then
  last=$(tail -1 "$stats")
  hdr=$(head -1 "$stats")
  col() { echo "$hdr" | tr ';' '\n' | grep -nx "$1" | cut -d: -f1; }
  ok=$(echo "$last" | cut -d';' -f"$(col SuccessfulCall\(C\))")
  failed=$(echo "$last" | cut -d';' -f"$(col FailedCall\(C\))")
  retrans=$(echo "$last" | cut -d';' -f"$(col Retransmissions\(C\))")
else
  ok=?; failed=?; retrans=?
fi
elapsed=$(echo "$end - $start" | bc)
# Every series carries node="…": read without it.
metrics=$(curl -s "127.0.0.1:$HTTP/metrics" | sed -E 's/node="[^"]*",?//; s/,\}/}/; s/\{\}//')
printf 'rate offered      %s calls/s, %s calls, hold %s ms\n' "$RATE" "$CALLS" "$HOLD"
printf 'calls             %s successful, %s failed, %s retransmissions (SIPp)\n' "$ok" "$failed" "$retrans"
printf 'achieved          %.0f calls/s over %.1f s\n' "$(echo "$ok / $elapsed" | bc -l)" "$elapsed"
printf 'dialerd CPU       %.0f %% of one core\n' "$(echo "($d1 - $d0) / $clk / $elapsed * 100" | bc -l)"
printf 'SIPp CPU          %.0f %% of one core (approx.)\n' "$(echo "$sipp_cpu / $clk / $elapsed * 100" | bc -l)"
printf 'dialerd RSS       idle %s KiB, peak %s KiB, %s s after %s KiB\n' "$idle_rss" "$peak_rss" "${SETTLE:-2}" "$after_rss"
echo "$metrics" | grep -E '^dialerd_sip_(dialogs_active|transactions_active|retransmissions_total) '
