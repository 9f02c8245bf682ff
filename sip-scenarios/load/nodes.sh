#!/usr/bin/env bash
# Several dialerd nodes on one PostgreSQL, a benchmark that prints figures (never a test):
#   a throwaway PostgreSQL cluster (lib.sh's start_pg: initdb in a temp directory, a free port,
#   `nobody` when root, pg_stat_statements), K release-build nodes on it (node1..nodeK, each its
#   own state directory, SIP and HTTP port and RTP range), one SIPp carrier behind every node's
#   trunk (agents/carrier.xml: answers 30 %, talks 5-20 s) and per node one SIPp answering its
#   agents' session calls. agents/nodes.py gives each node a predictive campaign and N agents
#   logged in there, lets all dial for MINUTES and prints per node CPU, RSS, calls placed and
#   answered per second, answer-to-agent and store latency, the overall calls per second and,
#   with two nodes or more, the lease take-over time after a SIGKILL of node1.
#
#   sip-scenarios/load/nodes.sh K [N=60] [MINUTES=2]
#   environment: DIALERD=target/release/dialerd (another build, e.g. to try the script out)
#                KEEP=1 (keep the work directory)
set -euo pipefail
cd "$(dirname "$0")/../.."
. sip-scenarios/load/lib.sh
K=${1:?usage: nodes.sh K [N=60] [MINUTES=2]}
N=${2:-60}
MINUTES=${3:-2}
CARRIER_PORT=${CARRIER_PORT:-5286}
ADMIN=nodes-bench-admin-token-0123456789
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

DIALERD=${DIALERD:-target/release/dialerd}
[ -x "$DIALERD" ] || cargo build --release
work=$(mktemp -d)
chmod 755 "$work"
mkdir "$work/pg"
pids=() phones=()
PG_STOP=true
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; $PG_STOP >/dev/null 2>&1; for f in "$work"/node*.log; do log_summary "$f" "$(basename "$f" .log)"; done; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
start_pg "$work/pg"
start_carrier "$work" "$CARRIER_PORT" 28000
pids+=($!)
nodes=""
for k in $(seq "$K"); do
    sip=$((5280 + 10 * k)) http=$((9280 + 10 * k)) phone=$((5282 + 10 * k))
    # Media ports below the kernel's ephemeral range (32768-60999), which connections may hold.
    rtp_min=$((10000 + 4000 * (k - 1))) rtp_max=$((13998 + 4000 * (k - 1)))
    dialerd_conf "$work/node$k.toml" "$work/state$k" "$http" "$sip" "$CARRIER_PORT" "$rtp_min" "$rtp_max"
    start_phones "$work" "$phone" $((23000 + 1000 * k)) "127.0.0.1:$sip"
    pids+=($!) phones+=("$!:$phone")
    DIALERD_ADMIN_TOKEN=$ADMIN DIALERD__STORE__URL=$PG_URL DIALERD__NODE__NAME=node$k \
        "$DIALERD" run --config "$work/node$k.toml" 2>"$work/node$k.log" &
    pids+=($!)
    nodes+=" node$k,127.0.0.1:$http,127.0.0.1:$sip,$phone,$!"
    wait_ready "$http" || { cat "$work/node$k.log"; exit 1; }
done
# A phone SIPp that could not bind its ports would leave its node's agents' logins ringing.
for p in "${phones[@]}"; do
    kill -0 "${p%%:*}" 2>/dev/null || { echo "the phones' SIPp on port ${p#*:} died:" >&2; cat "$work/phone_${p#*:}.out" >&2; exit 1; }
done
echo "benchmark         $K node(s) on one PostgreSQL, $N agents each, $MINUTES min of dialing; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
NODES=$nodes ADMIN=$ADMIN PG_URL=$PG_URL python3 sip-scenarios/load/agents/nodes.py "$N" "$MINUTES"
echo "load              $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "carrier SIPp      $(grep -c . "$work/carrier_errors.log" 2>/dev/null || echo 0) error-log lines"
