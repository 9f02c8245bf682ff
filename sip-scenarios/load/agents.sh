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
set -euo pipefail
cd "$(dirname "$0")/../.."
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
trap 'kill $daemon $phones $carrier 2>/dev/null; wait 2>/dev/null; echo "dialerd warnings: $(grep -c WARN "$work/dialerd.log"), errors: $(grep -c ERROR "$work/dialerd.log")"; grep -E "WARN|ERROR" "$work/dialerd.log" | sed -E "s/^[^ ]+ //" | sort | uniq -c | sort -rn | head -8; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
cat >"$work/dialerd.toml" <<CONF
state_dir = "$work/state"
[log]
level = "warn"
[http]
listen = "127.0.0.1:$HTTP"
[sip]
listen = ["127.0.0.1:$PORT"]
max_calls = 100000
session_expires = "0s"
digest_algorithms = ["MD5"]
# All phones share 127.0.0.1: the per-source limit would take them for a flood.
rate_limit_requests = 0
[media]
rtp_port_min = 10000
rtp_port_max = 29998
rtp_timeout = "0s"
prompts_dir = "$PWD/prompts"
[sessions]
ring_timeout = "30s"
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = $CARRIER_PORT
max_calls = 100000
max_cps = 10000.0
keepalive = "0s"
CONF
(cd sip-scenarios/load/agents && exec sipp -sf carrier.xml -i 127.0.0.1 -p "$CARRIER_PORT" -mp 45000 \
   -max_socket 100000 -buff_size 4194304 -nostdin -trace_err -error_file "$work/carrier_errors.log" \
   >"$work/carrier.out" 2>&1) &
carrier=$!
(cd "$work" && exec sipp -sf "$OLDPWD/sip-scenarios/agent/answer.xml" -i 127.0.0.1 -p "$PHONE_PORT" -mp 40000 \
   -rtp_echo -max_socket 100000 -buff_size 4194304 -nostdin -trace_err -error_file "$work/phone_errors.log" \
   "127.0.0.1:$PORT" >"$work/phone.out" 2>&1) &
phones=$!
DIALERD_ADMIN_TOKEN=$ADMIN target/release/dialerd run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
echo "benchmark         $N agents, $MINUTES min of dialing; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
HTTP=127.0.0.1:$HTTP SIP=127.0.0.1:$PORT PHONE_PORT=$PHONE_PORT DAEMON_PID=$daemon \
STATE_DB=$work/state/dialerd.db ADMIN=$ADMIN python3 sip-scenarios/load/agents/bench.py "$N" "$MINUTES"
echo "load              $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "carrier SIPp      $(grep -c . "$work/carrier_errors.log" 2>/dev/null || echo 0) error-log lines; phones SIPp $(grep -c . "$work/phone_errors.log" 2>/dev/null || echo 0)"
