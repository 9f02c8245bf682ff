#!/usr/bin/env bash
# baresip (Debian's `baresip` with its `srtp` module) as an agent's phone over SIP over TLS
# with SRTP (SDES keys, RFC 4568): RTP/SAVP to the echo number, then a relayed call whose other
# leg is plain RTP to SIPp as the carrier (SIPp has no SRTP), echoing what it gets. dialerd
# decrypts baresip's SRTP, sends it on in clear, and encrypts the echo on the way back; the
# relay's recording holds the clear audio of both sides. The audio is checked by its pitch:
# baresip sends a 440 Hz tone, and audio still encrypted would decode to noise.
# Usage: scripts/interop/baresip-srtp.sh   (after `cargo build`; KEEP=1 keeps the logs)
. "$(dirname "$0")/lib.sh"
TLS_PORT=${TLS_PORT:-15061}
CARRIER_PORT=${CARRIER_PORT:-15070}
MEDIAENC=${MEDIAENC:-srtp-mand}
tls_certs
export DIALERD__SIP__TLS_LISTEN="127.0.0.1:$TLS_PORT"
export DIALERD__SIP__TLS_CERTIFICATE="$WORK/sip.pem" DIALERD__SIP__TLS_PRIVATE_KEY="$WORK/sip.key"
export DIALERD__SIP__RELAY_PREFIX=9 DIALERD__MEDIA__RECORD_RELAY=true
# The carrier: SIPp answering and echoing RTP, over UDP (plain RTP/AVP, no a=crypto).
(cd "$WORK" && exec sipp -sn uas -rtp_echo -i 127.0.0.1 -p "$CARRIER_PORT" -m 1 -nostdin \
    -trace_msg -message_file carrier.msg -timeout 60s >/dev/null 2>"$WORK/carrier.err") &
PIDS+=($!)
# baresip 1.0 knows MD5 digest only (see baresip.sh).
# The legs log their keys and the first packet of each kind they drop.
export LOG_LEVEL=${LOG_LEVEL:-info,dialerd::media::leg=debug}
DIGEST='"MD5"' start_daemon "[[trunks]]
name = \"carrier\"
host = \"127.0.0.1\"
port = $CARRIER_PORT
keepalive = \"0s\""
check "dialerd listens for TLS" "$WORK/dialerd.log" "sip listening (tls)"

# sndfile dumps what baresip decodes from each call (dump-*-dec.wav): what it heard.
mkdir -p "$WORK/heard"
BARESIP_EXTRA="sip_cafile $WORK/ca.pem
module srtp.so
module sndfile.so
snd_path $WORK/heard" \
    start_baresip "<sip:agent1@127.0.0.1:$TLS_PORT;transport=tls>;auth_pass=agent1-secret;regint=300;mediaenc=$MEDIAENC"
check "baresip registers over TLS" "$WORK/baresip.log" "200 OK"

# 1. The echo number, SRTP both ways.
say "/dial sip:1000@127.0.0.1:$TLS_PORT;transport=tls"
check "baresip's SRTP call to the echo number is answered" "$WORK/baresip.log" "Call established"
proto=RTP/SAVP
[ "$MEDIAENC" = srtp ] && proto=RTP/AVP
answer=$(awk '/^SIP\/2.0 200 OK/ && /./ { on = 1 } on && /^CSeq: [0-9]+ INVITE/ { inv = 1 } on { print } on && /^a=ptime/ { if (inv) exit; on = 0 }' "$WORK/baresip.log")
if grep -q "^m=audio [0-9]* $proto " <<<"$answer" &&
    grep -qE '^a=crypto:[0-9]+ AES_CM_128_HMAC_SHA1_(80|32) inline:' <<<"$answer"; then
    pass "dialerd answers $proto with an a=crypto key"
else
    fail "dialerd's answer has no $proto with a=crypto"
fi
if wait_for_re "$WORK/baresip.log" 'audio=[1-9][0-9]*/[1-9]' 10; then
    pass "the echo comes back as SRTP that baresip authenticates and decrypts"
else
    fail "no SRTP back from the echo"
fi
sleep 1
say "/hangup"
check_metric dialerd_sip_dialogs_active 0 5 "the echo call ends"
# heard N: what baresip decoded on its Nth call.
heard() { tone_hz "$(ls "$WORK"/heard/dump-*-dec.wav 2>/dev/null | sort | sed -n "${1}p")" 0 2>/dev/null || echo 0; }
heard_echo=$(heard 1)
if near "$heard_echo" 440; then pass "baresip hears its 440 Hz tone back through SRTP ($heard_echo Hz)"; else fail "baresip heard $heard_echo Hz, not 440"; fi

# 2. A relayed call: SRTP to baresip, plain RTP to the carrier.
say "/dial sip:9100@127.0.0.1:$TLS_PORT;transport=tls"
check "baresip's SRTP call through the relay is answered" "$WORK/baresip.log" "Call established" 15
check_metric dialerd_sip_dialogs_active 2 10 "dialerd holds both legs"
sleep 4
say "/hangup"
check_metric dialerd_sip_dialogs_active 0 10 "the relayed call ends on both legs"
if grep -q "m=audio [0-9]* RTP/AVP " "$WORK/carrier.msg" && ! grep -q "a=crypto" "$WORK/carrier.msg"; then
    pass "the carrier leg is plain RTP/AVP without keys"
else
    fail "the carrier leg was offered SRTP or keys"
fi
heard=$(heard 2)
if near "$heard" 440; then pass "baresip hears the carrier's echo of its tone, re-encrypted ($heard Hz)"; else fail "baresip heard $heard Hz through the relay, not 440"; fi
wav=""
for _ in $(seq 50); do
    wav=$(find "$WORK/state/recordings" -name '*.wav' 2>/dev/null | head -1)
    [ -n "$wav" ] && grep -q "recording closed" "$WORK/dialerd.log" && break
    sleep 0.1
done
if [ -n "$wav" ]; then
    left=$(tone_hz "$wav" 0) right=$(tone_hz "$wav" 1)
    if near "$left" 440; then pass "the recording's caller side is the clear tone ($left Hz)"; else fail "the recording's caller side is $left Hz, not 440"; fi
    if near "$right" 440; then pass "the recording's carrier side is the clear echo ($right Hz)"; else fail "the recording's carrier side is $right Hz, not 440"; fi
else
    fail "no recording of the relayed call"
fi
check_srtp_drops
exit $FAILED
