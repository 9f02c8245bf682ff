#!/usr/bin/env bash
# N agents on a predictive campaign, a benchmark that prints figures:
#   the N agents' SIP logins are made through the API and registered by agents/bench.py (Digest
#   MD5 over UDP: SIPp cannot put injected fields into [authentication]) with their Contact on
#   one SIPp (sip-scenarios/agent/answer.xml, -rtp_echo) that auto-answers all N session calls
#   and keeps them up; a SIPp carrier behind a trunk (agents/carrier.xml)
#   answers 30 % of the calls and talks 5-20 s with RTP, is busy or rings out for the rest.
#   agents/bench.py creates the agents, tokens, campaign, contacts and safe-harbour message,
#   logs the agents in, lets the campaign dial for MINUTES (wrap-ups time out after WRAP_UP
#   seconds) and prints dialerd's CPU and RSS, answer-to-agent p50/p99, calls placed, answered,
#   abandoned and lost bridges (answered, neither bridged nor abandoned).
#
#   sip-scenarios/load/agents.sh N [MINUTES=5]
#   TRUNK_CPS=300 sip-scenarios/load/agents.sh N   (the trunk's max_cps; default 10000, no cap)
#   PLANNED_WAIT_MS=100 sip-scenarios/load/agents.sh N   (the task's planned_wait_ms)
set -euo pipefail
cd "$(dirname "$0")/../.."
. sip-scenarios/load/lib.sh
N=${1:?usage: agents.sh N [MINUTES=5]}
MINUTES=${2:-5}
PORT=${SIP_PORT:-5185}
HTTP=${HTTP_PORT:-9185}
CARRIER_PORT=${CARRIER_PORT:-5186}
PHONE_PORT=${PHONE_PORT:-5187}
ADMIN=agents-bench-admin-token-0123456789
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -x target/release/dialerd ] || cargo build --release
work=$(mktemp -d)
trap 'kill $daemon $phones $carrier 2>/dev/null; wait 2>/dev/null; log_summary "$work/dialerd.log"; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
dialerd_conf "$work/dialerd.toml" "$work/state" "$HTTP" "$PORT" "$CARRIER_PORT" 10000 29998
start_carrier "$work" "$CARRIER_PORT" 45000
carrier=$!
start_phones "$work" "$PHONE_PORT" 40000 "127.0.0.1:$PORT"
phones=$!
DIALERD_ADMIN_TOKEN=$ADMIN target/release/dialerd run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
wait_ready "$HTTP"
echo "benchmark         $N agents, $MINUTES min of dialing; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
HTTP=127.0.0.1:$HTTP SIP=127.0.0.1:$PORT PHONE_PORT=$PHONE_PORT DAEMON_PID=$daemon \
STATE_DB=$work/state/dialerd.db ADMIN=$ADMIN python3 sip-scenarios/load/agents/bench.py "$N" "$MINUTES"
echo "load              $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "carrier SIPp      $(grep -c . "$work/carrier_errors.log" 2>/dev/null || echo 0) error-log lines; phones SIPp $(grep -c . "$work/phone_errors_$PHONE_PORT.log" 2>/dev/null || echo 0)"
