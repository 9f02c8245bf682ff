# Shared by the agents benchmarks (agents.sh, nodes.sh): a daemon's config, the SIPp carrier
# and agent phones, a throwaway PostgreSQL cluster. Source it from the repository's root.

# dialerd_conf FILE STATE_DIR HTTP_PORT SIP_PORT CARRIER_PORT RTP_MIN RTP_MAX: a daemon on
# loopback for many agents on one host (no per-source limits, no session timers or RTP
# timeouts), its trunk `carrier` to the SIPp carrier.
dialerd_conf() {
    cat >"$1" <<CONF
state_dir = "$2"
[log]
level = "warn"
[http]
listen = "127.0.0.1:$3"
[sip]
listen = ["127.0.0.1:$4"]
max_calls = 100000
session_expires = "0s"
digest_algorithms = ["MD5"]
# All phones share 127.0.0.1: the per-source limit would take them for a flood.
rate_limit_requests = 0
[media]
rtp_port_min = $6
rtp_port_max = $7
rtp_timeout = "0s"
prompts_dir = "$PWD/prompts"
[sessions]
ring_timeout = "30s"
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = $5
max_calls = 100000
max_cps = ${TRUNK_CPS:-10000}.0
keepalive = "0s"
CONF
}

# start_carrier WORK PORT MEDIA_PORT: the SIPp carrier of agents/carrier.xml in the
# background (answers 30 %, talks 5-20 s with RTP: 2 s of a 440 Hz tone in A-law, looped); its
# pid in $!.
start_carrier() {
    command -v sox >/dev/null 2>&1 || { echo "sox not found (apt-get install sox): it makes the carrier's audio" >&2; return 1; }
    sox -n -r 8000 -c 1 -e a-law -t raw "$1/customer.pcma" synth 2 sine 440 vol 0.3
    (cd "$1" && exec sipp -sf "$OLDPWD/sip-scenarios/load/agents/carrier.xml" -i 127.0.0.1 -p "$2" -mp "$3" \
       -max_socket 100000 -buff_size 4194304 -nostdin -trace_err -error_file "$1/carrier_errors.log" \
       >"$1/carrier.out" 2>&1) &
}

# start_phones WORK PORT MEDIA_PORT DAEMON: one SIPp that auto-answers every agent's session
# call (sip-scenarios/agent/answer.xml) and echoes RTP, in the background; its pid in $!.
start_phones() {
    (cd "$1" && exec sipp -sf "$OLDPWD/sip-scenarios/agent/answer.xml" -i 127.0.0.1 -p "$2" -mp "$3" \
       -rtp_echo -max_socket 100000 -buff_size 4194304 -nostdin -trace_err \
       -error_file "$1/phone_errors_$2.log" "$4" >"$1/phone_$2.out" 2>&1) &
}

# log_summary LOG [NAME]: how many warnings and errors a daemon's log has, and the commonest.
log_summary() {
    echo "${2:-dialerd} warnings: $(grep -c WARN "$1" || true), errors: $(grep -c ERROR "$1" || true)"
    { grep -E "WARN|ERROR" "$1" || true; } | sed -E "s/^[^ ]+ //" | sort | uniq -c | sort -rn | head -8
}

# wait_ready HTTP_PORT: until the daemon's /readyz answers (10 s at most).
wait_ready() {
    for _ in $(seq 100); do curl -sf "127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done
    return 1
}

# start_pg DIR: a throwaway PostgreSQL cluster in DIR as tests/common/pg.rs makes one (initdb
# with Debian's binaries, a free port, durability off, `nobody` when root), with
# pg_stat_statements; sets PG_URL (database `bench`) and PG_STOP (the command that stops it).
start_pg() {
    local bin dir=$1 port run=()
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$bin/initdb" ] || { echo "PostgreSQL's initdb not found (apt-get install postgresql)" >&2; return 1; }
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$dir"
        run=(runuser -u nobody --)
    fi
    echo bench-pg-secret >"$dir/pw"
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --encoding=UTF8 \
        --locale=C --no-sync --pwfile="$dir/pw" >"$dir/initdb.log" 2>&1
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -o "-p $port -k $dir \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=300 \
        -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" \
        start >/dev/null
    PG_URL="postgres://postgres:bench-pg-secret@127.0.0.1:$port/bench"
    PG_STOP="${run[*]} $bin/pg_ctl -D $dir/data -m immediate stop"
    psql -X -q -v ON_ERROR_STOP=1 "${PG_URL%/bench}/postgres" \
        -c "CREATE DATABASE bench" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 "$PG_URL" -c "CREATE EXTENSION pg_stat_statements" >/dev/null
}
