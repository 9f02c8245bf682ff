#!/usr/bin/env bash
# SIPp (Debian's `sip-tester`) as a carrier over UDP and over TCP: it answers dialerd's test
# call through a trunk (outbound), and it calls the echo number with RTP, and with RFC 4733
# DTMF over UDP, then hangs up (inbound). TLS: dialerd has no SIP over TLS yet
# (docs/interop.md, "Known limitations").
# Usage: scripts/interop/sipp-carrier.sh   (after `cargo build`; KEEP=1 keeps the logs)
. "$(dirname "$0")/lib.sh"
CARRIER_PORT=${CARRIER_PORT:-15070}
SC=$TOP/sip-scenarios

for transport in udp tcp; do
    t=${transport:0:1}1
    start_daemon "[[trunks]]
name = \"carrier\"
host = \"127.0.0.1\"
port = $CARRIER_PORT
transport = \"$transport\"
inbound_from = [\"127.0.0.1\"]
keepalive = \"0s\""

    # Outbound: dialerd → SIPp carrier.
    (cd "$WORK" && sipp -sf "$SC/carrier_answers.xml" -t "$t" -i 127.0.0.1 -p "$CARRIER_PORT" -m 1 \
        -timeout 30 -timeout_error -nostdin -trace_err >"$WORK/sipp-uas-$transport.log" 2>&1) &
    uas=$!
    sleep 1
    DIALERD_ADMIN_TOKEN=$ADMIN_TOKEN DIALERD__HTTP__LISTEN="127.0.0.1:$HTTP_PORT" \
        "$BIN" test-call --config "$WORK/dialerd.toml" --trunk carrier --to 4915112345678 \
        >"$WORK/test-call-$transport.log" 2>&1 && answered=1 || answered=0
    if [ "$answered" = 1 ] && wait "$uas"; then
        pass "$transport: dialerd's test call through the trunk is answered by SIPp ($(grep -oE '"(outcome|code)": *"?[a-z0-9_]+' "$WORK/test-call-$transport.log" | tr -d '"' | tr '\n' ' '))"
    else
        fail "$transport: outbound test call: $(cat "$WORK/test-call-$transport.log")"
    fi

    # Inbound: SIPp carrier → dialerd's echo number (5 calls), and DTMF over UDP.
    if (cd "$WORK" && sipp -sf "$SC/call_echo_bye_from_caller.xml" -t "$t" -i 127.0.0.1 -m 5 -s 1000 \
        -timeout 30 -timeout_error -nostdin -trace_err "127.0.0.1:$SIP_PORT" >"$WORK/sipp-uac-$transport.log" 2>&1); then
        pass "$transport: 5 calls from SIPp to the echo number, BYE from the caller"
    else
        fail "$transport: inbound echo calls (see $WORK/sipp-uac-$transport.log)"
    fi
    if [ "$transport" = udp ]; then
        if (cd "$WORK" && sipp -sf "$SC/call_echo_dtmf.xml" -t u1 -i 127.0.0.1 -m 1 -s 1000 \
            -timeout 30 -timeout_error -nostdin -trace_err "127.0.0.1:$SIP_PORT" >"$WORK/sipp-dtmf.log" 2>&1) \
            && wait_for "$WORK/dialerd.log" "digit=3" 5; then
            pass "udp: SIPp's RFC 4733 DTMF (pcap) reaches dialerd"
        else
            fail "udp: SIPp DTMF"
        fi
    fi
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    mv "$WORK/dialerd.log" "$WORK/dialerd-$transport.log"
done
exit $FAILED
