#!/usr/bin/env bash
# Relayed calls with audio both ways, a benchmark that prints figures:
#   SIPp UAC (uac_pcma_20ms.xml: 7 s of PCMA in 20 ms packets, 1.5 s quiet, BYE)
#     → dialerd's relay route (sip.relay_prefix "9") → trunk → SIPp UAS echoing RTP (-rtp_echo).
# Every packet crosses dialerd twice (caller → carrier, echo → caller). Prints calls, peak
# concurrent calls, RTP packets/s through dialerd and dialerd CPU — over the whole run and over
# the steady state (while at least 90 % of the peak calls are up) — packets not forwarded, and
# RSS per call.
#
#   sip-scenarios/load/relay.sh [RATE=120] [CALLS=2000]   (RATE × 8.5 s ≈ concurrent calls)
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-120}
CALLS=${2:-2000}
PORT=${SIP_PORT:-5163}
HTTP=${HTTP_PORT:-9163}
UAS_PORT=${UAS_PORT:-5173}
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -x target/release/dialerd ] || cargo build --release
work=$(mktemp -d)
trap 'kill $daemon $uas 2>/dev/null; tail -3 "$work/dialerd.log"; echo "slow store writes: $(grep -c "slow statement" "$work/dialerd.log")"; [ "${failed:-1}" = 0 ] || tail -20 "$work"/*errors.log; rm -rf "$work"' EXIT
mkdir -p "$work/pcap"
cp sip-scenarios/load/pcap/pcma_20ms.pcap "$work/pcap/"
cat >"$work/dialerd.toml" <<CONF
state_dir = "$work/state"
[log]
level = "warn"
[http]
listen = "127.0.0.1:$HTTP"
[sip]
listen = ["127.0.0.1:$PORT"]
relay_prefix = "9"
max_calls = 100000
session_expires = "0s"
[media]
rtp_port_min = 10000
rtp_port_max = 29998
prompts_dir = "$PWD/prompts"
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = $UAS_PORT
max_calls = 100000
max_cps = 10000.0
keepalive = "0s"
CONF
(cd "$work" && exec sipp -sn uas -rtp_echo -i 127.0.0.1 -p "$UAS_PORT" -mp 40000 -m "$CALLS" \
   -max_socket 100000 -buff_size 4194304 -nostdin -timeout 600s >"$work/uas.out" 2>&1) &
uas=$!
target/release/dialerd run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 50); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
# Every series carries node="…": read without it.
metric() { curl -s "127.0.0.1:$HTTP/metrics" | sed -E 's/node="[^"]*",?//; s/,\}/}/; s/\{\}//' | awk -v m="$1" '$1==m {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
idle=$(rss_kib)
t0=$(date +%s.%N); c0=$(cpu_ticks)
(cd "$work" && sipp -sf "$OLDPWD/sip-scenarios/load/uac_pcma_20ms.xml" -s 91000 -i 127.0.0.1 -mp 50000 -r "$RATE" -m "$CALLS" \
   -max_socket 100000 -buff_size 4194304 -nostdin -timeout 600s -trace_err 127.0.0.1:$PORT \
   >"$work/uac.out" 2>&1) &
uac=$!
peak_calls=0; peak_rss=$idle; rss_at_peak=$idle
while kill -0 $uac 2>/dev/null; do
  calls=$(metric dialerd_rtp_sessions_active); calls=${calls:-0}
  rss=$(rss_kib)
  [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
  if [ "$calls" -gt "$peak_calls" ]; then peak_calls=$calls; rss_at_peak=$rss; fi
  echo "$(date +%s.%N) $(cpu_ticks) $(metric 'dialerd_rtp_packets_total{direction="in"}') $(metric 'dialerd_rtp_packets_total{direction="out"}') $calls" >>"$work/samples"
  sleep 0.5
done
wait $uac || true
t1=$(date +%s.%N); c1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
secs=$(echo "$t1 - $t0" | bc -l)
in=$(metric 'dialerd_rtp_packets_total{direction="in"}'); out=$(metric 'dialerd_rtp_packets_total{direction="out"}')
ok=$(awk '/Successful call/ {print $NF}' "$work/uac.out" | tail -1)
failed=$(awk '/Failed call/ {print $NF}' "$work/uac.out" | tail -1)
legs=$((peak_calls / 2))
echo "offered           $RATE calls/s, $CALLS calls (~8.5 s each, 20 ms PCMA both ways)"
echo "calls             ${ok:-?} successful, ${failed:-?} failed"
echo "peak concurrent   $legs relayed calls ($peak_calls media legs)"
echo "RTP through       in $in, out $out packets over $(printf %.1f "$secs") s: $(echo "($in + $out) / $secs" | bc) packets/s; out/in $(echo "scale=4; $out / $in" | bc)"
echo "dialerd CPU       $(echo "scale=1; 100 * ($c1 - $c0) / $hz / $secs" | bc) % of one core on average"
# Steady state: the samples while at least 90 % of the peak legs were up.
awk -v peak="$peak_calls" -v hz="$hz" '$5 >= 0.9 * peak && $3 != "" {
    if (!n++) { t0 = $1; c0 = $2; i0 = $3; o0 = $4 } t1 = $1; c1 = $2; i1 = $3; o1 = $4; s += $5 }
  END { if (n > 1 && t1 > t0) printf "steady state      %.1f s at %d relayed calls on average: %d packets/s, %.1f %% of one core (%.1f %% per 100 calls)\n",
    t1 - t0, s / n / 2, (i1 - i0 + o1 - o0) / (t1 - t0), 100 * (c1 - c0) / hz / (t1 - t0), 100 * (c1 - c0) / hz / (t1 - t0) / (s / n / 2) * 100 }' "$work/samples"
echo "not forwarded     $((in - out)) of $in packets received"
echo "dialerd RSS       idle $idle KiB, $rss_at_peak KiB at peak calls ($(( (rss_at_peak - idle) / (legs > 0 ? legs : 1) )) KiB per relayed call), peak $peak_rss KiB"
