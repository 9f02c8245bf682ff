#!/usr/bin/env bash
# Password guessing against the registrar: SIPp sends wrong-password REGISTERs for agent1 as
# fast as dialerd answers, on PARALLEL calls from one address, for SECS seconds. Prints the
# REGISTERs answered and the guesses dialerd actually judged (dialerd_sip_auth_failures_total),
# per second. A benchmark, never part of the test suite.
#
#   sip-scenarios/load/register_guessing.sh [SECS=10] [PARALLEL=8]
#
# DIALERD_BIN picks the binary (default target/release/dialerd, built if missing), e.g. an
# older build to compare.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
PARALLEL=${2:-8}
PORT=${SIP_PORT:-5162}
HTTP=${HTTP_PORT:-9162}
BIN=${DIALERD_BIN:-target/release/dialerd}

[ -x "$BIN" ] || cargo build --release
work=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/dialerd.toml" <<TOML
[sip]
digest_algorithms = ["MD5"]
[[agents]]
username = "agent1"
password = "a-password-nobody-guesses"
TOML

DIALERD__SIP__LISTEN=127.0.0.1:$PORT DIALERD__HTTP__LISTEN=127.0.0.1:$HTTP \
DIALERD__LOG__LEVEL=error DIALERD__STATE_DIR="$work/state" \
  "$BIN" run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done

# Every series carries node="…": read without it.
metric() { curl -s "127.0.0.1:$HTTP/metrics" | sed -E 's/node="[^"]*",?//; s/,\}/}/; s/\{\}//' | awk -v s="$1" '$1 == s {print $2}'; }
clk=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
d0=$(cpu $daemon)
start=$(date +%s.%N)
# The calls never end by themselves: SIPp is interrupted after SECS.
(cd "$work" && timeout -s INT -k 5 "$SECS" sipp -sf "$OLDPWD/sip-scenarios/load/uac_register_guess.xml" \
   -i 127.0.0.1 -m "$PARALLEL" -l "$PARALLEL" -r 1000 -nostdin \
   127.0.0.1:$PORT >"$work/sipp.out" 2>&1) || true
end=$(date +%s.%N)
d1=$(cpu $daemon)
elapsed=$(echo "$end - $start" | bc)
registers=$(metric 'dialerd_sip_requests_total{direction="in",method="REGISTER"}')
judged=$(metric dialerd_sip_auth_failures_total)
throttled=$(metric dialerd_sip_register_throttled_total)
printf 'guessing          %s parallel calls from 127.0.0.1 for %.1f s (%s)\n' "$PARALLEL" "$elapsed" "$BIN"
printf 'REGISTERs in      %s (%.0f /s)\n' "${registers:-0}" "$(echo "${registers:-0} / $elapsed" | bc -l)"
printf 'guesses judged    %s (%.1f /s): dialerd_sip_auth_failures_total\n' "${judged:-0}" "$(echo "${judged:-0} / $elapsed" | bc -l)"
printf 'answered 503      %s: dialerd_sip_register_throttled_total\n' "${throttled:-n/a}"
printf 'dialerd CPU       %.0f %% of one core\n' "$(echo "($d1 - $d0) / $clk / $elapsed * 100" | bc -l)"
