#!/usr/bin/env bash
# Memory per held call: CALLS echo calls held open at once, RSS measured while all are up and
# again after they end. A benchmark; prints figures.
#
#   sip-scenarios/load/held_calls.sh [CALLS=10000] [RATE=1000]
#
# With RTCP_MUX=1 the calls offer a=rtcp-mux (RFC 5761), so each holds one socket instead of
# two: that is how 10,000 calls fit under a 20,000 file-descriptor limit.
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS=${1:-10000}
RATE=${2:-1000}
PORT=${SIP_PORT:-5161}
HTTP=${HTTP_PORT:-9161}
HOLD_MS=$(( (CALLS / RATE + 15) * 1000 ))
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -x target/release/dialerd ] || cargo build --release
work=$(mktemp -d)
scenario="$PWD/sip-scenarios/load/uac_short_calls.xml"
if [ "${RTCP_MUX:-0}" = 1 ]; then
  sed 's|^\( *\)a=rtpmap:0 PCMU/8000|&\n\1a=rtcp-mux|' "$scenario" >"$work/uac_rtcp_mux.xml"
  scenario="$work/uac_rtcp_mux.xml"
fi
trap 'kill $daemon 2>/dev/null; rm -rf "$work"' EXIT
DIALERD__SIP__LISTEN=127.0.0.1:$PORT DIALERD__HTTP__LISTEN=127.0.0.1:$HTTP \
DIALERD__SIP__ECHO_NUMBER=1000 DIALERD__SIP__MAX_CALLS=1000000 DIALERD__LOG__LEVEL=warn \
DIALERD__STATE_DIR="$work/state" DIALERD__SIP__SESSION_EXPIRES=0s \
DIALERD__MEDIA__RTP_PORT_MIN=10000 DIALERD__MEDIA__RTP_PORT_MAX=65000 DIALERD__MEDIA__RTP_TIMEOUT=0s \
  target/release/dialerd run --config conf/dialerd.toml 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 50); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
dialogs() { curl -s "127.0.0.1:$HTTP/metrics" | awk '/^dialerd_sip_dialogs_active[ {]/{print $2}'; }
idle=$(rss_kib $daemon)
(cd "$work" && sipp -sf "$scenario" -i 127.0.0.1 \
   -r "$RATE" -m "$CALLS" -d "$HOLD_MS" -l "$CALLS" -max_socket 100000 -buff_size 4194304 \
   -nostdin -timeout 600s 127.0.0.1:$PORT >"$work/sipp.out" 2>&1) &
sipp_pid=$!
held=0
for _ in $(seq 600); do
  held=$(dialogs); [ "${held:-0}" -ge "$CALLS" ] && break; sleep 0.2
done
sleep 3
peak=$(rss_kib $daemon)
echo "held dialogs      $held (rtcp-mux offered: ${RTCP_MUX:-0}; dialerd fds $(ls /proc/$daemon/fd | wc -l))"
echo "RSS idle          $idle KiB"
echo "RSS with calls    $peak KiB  ($(( (peak - idle) * 1024 / CALLS )) bytes per held call, set-up transactions still lingering)"
sleep 33
steady=$(rss_kib $daemon)
echo "RSS 33 s later    $steady KiB  ($(( (steady - idle) * 1024 / CALLS )) bytes per held call, transactions expired)"
wait $sipp_pid || true
sleep 35
echo "RSS after hang-up $(rss_kib $daemon) KiB (dialogs $(dialogs))"
tail -5 "$work/sipp.out"; grep -v INFO "$work/dialerd.log" | tail -5
