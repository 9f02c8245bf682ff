# Shared by the interop scripts: a daemon on fixed loopback ports with two agent accounts,
# its log in $WORK/dialerd.log, and checks that print one PASS/FAIL line each.
# DIALERD_BIN picks the binary (default target/debug/dialerd, as `cargo build` leaves it).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${DIALERD_BIN:-$TOP/target/debug/dialerd}
WORK=$(mktemp -d /tmp/dialerd-interop.XXXXXX)
SIP_PORT=${SIP_PORT:-15060}
HTTP_PORT=${HTTP_PORT:-19090}
FAILED=0
ADMIN_TOKEN=interop-admin-token-0123456789
PIDS=()

cleanup() {
    # Last started first: phones un-REGISTER while the daemon is still there to answer.
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        timeout 5 tail --pid="${PIDS[i]}" -f /dev/null 2>/dev/null || kill -9 "${PIDS[i]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "$FAILED" = 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "logs kept in $WORK"; fi
}
trap cleanup EXIT

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }

# wait_for FILE TEXT SECONDS: true once TEXT appears in FILE.
wait_for() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -qF -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# wait_for_re FILE REGEX SECONDS: like wait_for, with an extended regular expression.
wait_for_re() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# check NAME FILE TEXT [SECONDS]: PASS when TEXT shows up in FILE in time.
check() {
    if wait_for "$2" "$3" "${4:-10}"; then pass "$1"; else fail "$1 (no \"$3\" in $2)"; fi
}

# tls_certs: a throwaway CA ($WORK/ca.pem) and a certificate for 127.0.0.1 signed by it
# ($WORK/sip.pem, key $WORK/sip.key), for the daemon's TLS listener.
tls_certs() {
    (
        cd "$WORK"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
            -subj "/CN=interop CA" -days 2 -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout sip.key -out sip.csr \
            -subj "/CN=127.0.0.1" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\n' >sip.ext
        openssl x509 -req -in sip.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out sip.pem -days 2 \
            -extfile sip.ext 2>/dev/null
    )
}

# tone_hz WAV CHANNEL: the pitch of one channel (0 = left) of a 16-bit PCM WAV, from its zero
# crossings over the samples louder than silence; 0 when it is silent. A clear tone gives its
# frequency; noise (audio decoded from packets still encrypted) gives thousands of Hz.
tone_hz() {
    python3 - "$1" "$2" <<'PY'
import array, sys, wave
w = wave.open(sys.argv[1])
ch, rate = w.getnchannels(), w.getframerate()
assert w.getsampwidth() == 2, "16-bit PCM only"
s = array.array("h", w.readframes(w.getnframes()))
if sys.byteorder == "big":
    s.byteswap()
x = [v for v in s[int(sys.argv[2])::ch]]
loud = [i for i, v in enumerate(x) if abs(v) > 500]
if len(loud) < rate // 2:
    print(0)
    sys.exit()
seg = x[loud[0] : loud[-1] + 1]
crossings = sum(1 for a, b in zip(seg, seg[1:]) if (a < 0) != (b < 0))
print(round(crossings / 2 / (len(seg) / rate)))
PY
}

# near HZ WANT: true when HZ is within 5 % of WANT.
near() { python3 -c "import sys; sys.exit(0 if abs($1 - $2) <= 0.05 * $2 else 1)"; }

# start_daemon [EXTRA_TOML]: the test routes (echo 1000, prompt 1001), two agent accounts
# (agent1, agent2) and EXTRA (trunks, ...). No trunk unless EXTRA has one, so phones' INVITEs
# are digest-checked as agents' calls.
start_daemon() {
    local digest=${DIGEST:-'"SHA-256", "MD5"'}
    cat >"$WORK/dialerd.toml" <<TOML
[sip]
echo_number = "1000"
prompt_number = "1001"
digest_algorithms = [$digest]

[shutdown]
drain_timeout = "3s"

[[agents]]
username = "agent1"
password = "agent1-secret"

[[agents]]
username = "agent2"
password = "agent2-secret"

${1:-}
TOML
    DIALERD__SIP__LISTEN="127.0.0.1:$SIP_PORT" DIALERD__HTTP__LISTEN="127.0.0.1:$HTTP_PORT" \
        DIALERD__STATE_DIR="$WORK/state" DIALERD__MEDIA__PROMPTS_DIR="$TOP/prompts" \
        DIALERD__LOG__LEVEL="${LOG_LEVEL:-info}" DIALERD_ADMIN_TOKEN=$ADMIN_TOKEN \
        "$BIN" run --config "$WORK/dialerd.toml" >"$WORK/dialerd.log" 2>&1 &
    PIDS+=($!)
    wait_for "$WORK/dialerd.log" "dialerd ready" 20 || { cat "$WORK/dialerd.log"; fail "daemon did not start"; exit 1; }
}

# start_baresip ACCOUNT_LINE: Debian's baresip on 127.0.0.1 (SIP trace on), a 440 Hz tone as
# microphone and a file as speaker, commands through `say`, output in $WORK/baresip.log.
# BARESIP_EXTRA adds config lines (e.g. sip_cafile).
start_baresip() {
    local conf=$WORK/baresip
    mkdir -p "$conf"
    cat >"$conf/config" <<CONF
poll_method epoll
sip_listen 127.0.0.1:0
net_interface 127.0.0.1
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aufile.so
module stdio.so
module_app account.so
module_app menu.so
audio_source ausine,440
audio_player aufile,$conf/heard.wav
audio_alert aufile,$conf/alert.wav
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
${BARESIP_EXTRA:-}
CONF
    echo "$1" >"$conf/accounts"
    : >"$conf/contacts"
    mkfifo "$WORK/baresip.in"
    baresip -s -f "$conf" <"$WORK/baresip.in" >"$WORK/baresip.log" 2>&1 &
    PIDS+=($!)
    exec 3>"$WORK/baresip.in"
}
say() { printf '%s\n' "$1" >&3; }

# metric NAME: the value of one series on /metrics (empty when absent).
metric() {
    # Every series carries node="…": read it without that label.
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" \
        | sed -E 's/node="[^"]*",?//; s/,\}/}/; s/\{\}//' \
        | awk -v n="$1" '$1 == n { print $2 }'
}

# check_metric NAME VALUE SECONDS WHAT: PASS once the series has VALUE.
check_metric() {
    local i
    for i in $(seq $(($3 * 10))); do
        [ "$(metric "$1")" = "$2" ] && { pass "$4"; return; }
        sleep 0.1
    done
    fail "$4 ($1 = $(metric "$1"), wanted $2)"
}

# api METHOD PATH [JSON] [TOKEN]: the daemon's API; prints the body.
api() {
    curl -s -X "$1" -H "Authorization: Bearer ${4:-$ADMIN_TOKEN}" -H 'Content-Type: application/json' \
        ${3:+-d "$3"} "http://127.0.0.1:$HTTP_PORT$2"
}
# json FIELD: one top-level field of the JSON on stdin.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# api_agent NAME SIP_PASSWORD: a campaign with a call task and an agent serving it with a SIP
# login (stored as an MD5 digest); prints "TASK_ID AGENT_TOKEN".
api_agent() {
    local c t u tok
    c=$(api POST /api/v1/campaigns '{"name": "interop", "default_region": "DE", "time_zone": "Europe/Berlin"}' | json id)
    t=$(api POST "/api/v1/campaigns/$c/tasks" '{"name": "dial", "kind": "call", "settings": {"queue": "q", "dial_mode": "progressive"}}' | json id)
    u=$(api POST /api/v1/users "{\"name\": \"$1\", \"role\": \"agent\", \"sip_username\": \"$1\", \"sip_password\": \"$2\", \"tasks\": [$t]}" | json id)
    tok=$(api POST "/api/v1/users/$u/tokens" '{"label": "interop"}' | json token)
    echo "$t $tok"
}

# check_srtp_drops: passes when no SRTP or SRTCP packet failed its check (metrics of the daemon
# on $HTTP_PORT); on a failure prints the SRTP lines of $WORK/dialerd.log.
check_srtp_drops() {
    local dropped clear
    dropped=$(metric 'dialerd_srtp_packets_dropped_total{kind="rtp"}')
    if [ "${dropped:-0}" = 0 ]; then pass "no SRTP packet failed its check"; else fail "$dropped SRTP packets dropped"; fi
    # baresip sends an RTCP APP "PING" in clear when a call starts: dropped, and counted apart.
    dropped=$(metric 'dialerd_srtp_packets_dropped_total{kind="rtcp"}')
    clear=$(metric 'dialerd_srtp_packets_dropped_total{kind="rtcp_clear"}')
    if [ "${dropped:-0}" = 0 ]; then
        pass "no SRTCP packet failed its check (${clear:-0} clear RTCP dropped)"
    else
        fail "$dropped SRTCP packets failed their check"
        grep -E "SRTP keys set|SRTCP packet dropped" "$WORK/dialerd.log"
    fi
}
