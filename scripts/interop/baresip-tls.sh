#!/usr/bin/env bash
# baresip (Debian's `baresip`, built with TLS) as an agent's phone over SIP over TLS: it checks
# dialerd's certificate against a throwaway CA, registers with digest, calls the echo number
# and hears the echo, and hangs up — all signalling on one TLS connection to sip.tls_listen.
# Usage: scripts/interop/baresip-tls.sh   (after `cargo build`; KEEP=1 keeps the logs)
. "$(dirname "$0")/lib.sh"
TLS_PORT=${TLS_PORT:-15061}
tls_certs
export DIALERD__SIP__TLS_LISTEN="127.0.0.1:$TLS_PORT"
export DIALERD__SIP__TLS_CERTIFICATE="$WORK/sip.pem" DIALERD__SIP__TLS_PRIVATE_KEY="$WORK/sip.key"
# baresip 1.0 knows MD5 digest only (see baresip.sh).
DIGEST='"MD5"' start_daemon
check "dialerd listens for TLS" "$WORK/dialerd.log" "sip listening (tls)"

BARESIP_EXTRA="sip_cafile $WORK/ca.pem" \
    start_baresip "<sip:agent1@127.0.0.1:$TLS_PORT;transport=tls>;auth_pass=agent1-secret;regint=300"
check "baresip registers over TLS (the certificate checked against the CA)" "$WORK/baresip.log" "200 OK"
if grep -q "SIP/2.0/TLS" "$WORK/baresip.log"; then pass "the REGISTER's Via says TLS"; else fail "no TLS Via in baresip's trace"; fi
say "/dial sip:1000@127.0.0.1:$TLS_PORT;transport=tls"
check "baresip's call to the echo number over TLS is answered" "$WORK/baresip.log" "Call established"
check_metric dialerd_sip_dialogs_active 1 5 "dialerd holds one dialog"
if wait_for_re "$WORK/baresip.log" 'audio=[1-9][0-9]*/[1-9]' 10; then pass "the echo comes back (baresip receives RTP)"; else fail "no RTP back from the echo"; fi
if grep -q "Contact: <sip:dialerd@127.0.0.1:$TLS_PORT;transport=tls>" "$WORK/baresip.log"; then pass "dialerd's Contact is its TLS address"; else fail "dialerd's Contact is not its TLS address"; fi
say "/hangup"
check_metric dialerd_sip_dialogs_active 0 5 "baresip hangs up over TLS: dialerd ends the dialog"
exit $FAILED
