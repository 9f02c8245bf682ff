#!/usr/bin/env bash
# Kamailio (Debian's `kamailio`, conf/kamailio/dialerd-proxy.cfg) as a proxy in front of
# dialerd, baresip as the agent's phone behind it: REGISTER through the proxy (Path added),
# calls through it (Record-Route), BYE from dialerd and from the phone along the route set.
# Usage: scripts/interop/kamailio.sh   (after `cargo build`; KEEP=1 keeps the logs)
. "$(dirname "$0")/lib.sh"
PROXY_PORT=${PROXY_PORT:-15062}
start_daemon
# An agent made through the API: its SIP login is stored as an MD5 digest, which baresip 1.0
# can answer (see baresip.sh), on the shipped digest_algorithms.
read -r TASK AGENT_TOKEN < <(api_agent ann ann-long-secret)

kamailio -f "$TOP/conf/kamailio/dialerd-proxy.cfg" -DD -E -Y "$WORK/kamailio.pid" \
    -A "LISTEN=udp:127.0.0.1:$PROXY_PORT" -A "LISTEN_TCP=tcp:127.0.0.1:$PROXY_PORT" \
    -A "DIALERD=\"sip:127.0.0.1:$SIP_PORT\"" >"$WORK/kamailio.log" 2>&1 &
PIDS+=($!)
wait_for "$WORK/kamailio.log" "udp: 127.0.0.1" 10 || { fail "kamailio did not start"; cat "$WORK/kamailio.log"; exit 1; }

start_baresip "<sip:ann@127.0.0.1:$SIP_PORT;transport=udp>;auth_pass=ann-long-secret;answermode=auto;regint=300;outbound=\"sip:127.0.0.1:$PROXY_PORT;transport=udp\""
check "REGISTER through kamailio reaches dialerd" "$WORK/kamailio.log" "proxy: REGISTER" 10
check "baresip registers through kamailio (digest)" "$WORK/baresip.log" "200 OK" 10
if grep -q "^Path:" "$WORK/baresip.log"; then
    pass "dialerd's 200 to the REGISTER echoes the Path (RFC 3327)"
else
    echo "KNOWN: dialerd's 200 to the REGISTER has no Path: dialerd keeps no Path (docs/interop.md)"
fi

# The echo: answered through the proxy, route set used for the phone's BYE.
say "/dial sip:1000@127.0.0.1:$SIP_PORT"
check "the call to the echo number through kamailio is answered" "$WORK/baresip.log" "Call established"
if grep -q "^Record-Route:" "$WORK/baresip.log"; then pass "the 200 carries kamailio's Record-Route"; else fail "no Record-Route in the 200"; fi
if wait_for_re "$WORK/baresip.log" 'audio=[1-9][0-9]*/[1-9]' 10; then pass "the echo comes back"; else fail "no RTP back from the echo"; fi
say "/hangup"
check "the phone's BYE goes through kamailio" "$WORK/kamailio.log" "proxy: BYE" 5
check_metric dialerd_sip_dialogs_active 0 5 "dialerd ends the dialog"

# The prompt number: dialerd hangs up, and its BYE must follow the route set (via kamailio).
before=$(grep -c "proxy: BYE" "$WORK/kamailio.log" || true)
say "/dial sip:1001@127.0.0.1:$SIP_PORT"
check "the call to the prompt number through kamailio is answered" "$WORK/baresip.log" "Call established"
for _ in $(seq 150); do
    [ "$(grep -c "proxy: BYE" "$WORK/kamailio.log")" -gt "$before" ] && break
    sleep 0.1
done
if grep "proxy: BYE" "$WORK/kamailio.log" | tail -1 | grep -q "from 127.0.0.1:$SIP_PORT"; then
    pass "dialerd's BYE goes through kamailio (route set from Record-Route)"
else
    fail "dialerd's BYE did not pass kamailio: $(grep 'proxy: BYE' "$WORK/kamailio.log" | tail -2)"
fi
check_metric dialerd_sip_dialogs_active 0 5 "dialerd ends the prompt call"

# The agent's session: dialerd calls the registered phone. Through the proxy only if it kept
# the Path; otherwise straight to the Contact (which works here only because all is on lo).
before=$(grep -c "proxy: INVITE" "$WORK/kamailio.log" || true)
api POST /api/v1/agent/session "{\"tasks\": [$TASK], \"phone\": \"sip\"}" "$AGENT_TOKEN" >"$WORK/session.json"
if grep -q '"state":"paused"' "$WORK/session.json"; then
    pass "agent session: dialerd's call to the phone behind kamailio is answered"
else
    fail "agent session: $(cat "$WORK/session.json")"
fi
if [ "$(grep -c "proxy: INVITE" "$WORK/kamailio.log")" -gt "$before" ]; then
    pass "dialerd's INVITE to the phone follows the Path through kamailio"
else
    echo "KNOWN: dialerd's INVITE to the phone went straight to its Contact, not along the Path (docs/interop.md)"
fi
api DELETE /api/v1/agent/session "" "$AGENT_TOKEN" >/dev/null
check_metric dialerd_sip_dialogs_active 0 5 "logout: dialerd hangs up the session leg"
exit $FAILED
