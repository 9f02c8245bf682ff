#!/usr/bin/env bash
# SRTP on a TLS trunk (`media_encryption = "srtp"`): a relayed call from baresip as an agent's
# phone (TLS, SRTP) through dialerd to a second baresip as the carrier (TLS, SRTP, answering by
# itself). dialerd offers the carrier RTP/SAVP with its own key, so the call is SRTP ⇄ SRTP with
# separate keys per leg: each side's audio is decrypted and re-encrypted by dialerd. The phone
# sends a 440 Hz tone, the carrier 880 Hz; each must hear the other's, and the relay's
# recording must hold both in clear.
# Usage: scripts/interop/baresip-srtp-trunk.sh   (after `cargo build`; KEEP=1 keeps the logs)
. "$(dirname "$0")/lib.sh"
TLS_PORT=${TLS_PORT:-15061}
CARRIER_PORT=${CARRIER_PORT:-15070} # baresip listens for TLS on the next port
tls_certs
cat "$WORK/sip.pem" "$WORK/sip.key" >"$WORK/carrier.pem"
mkdir -p "$WORK/carrier" "$WORK/carrier-heard" "$WORK/heard"
cat >"$WORK/carrier/config" <<CONF
poll_method epoll
sip_listen 127.0.0.1:$CARRIER_PORT
sip_certificate $WORK/carrier.pem
net_interface 127.0.0.1
module_path /usr/lib/baresip/modules
module g711.so
module ausine.so
module aufile.so
module stdio.so
module srtp.so
module sndfile.so
snd_path $WORK/carrier-heard
module_app account.so
module_app menu.so
audio_source ausine,880
audio_player aufile,$WORK/carrier/heard.wav
ausrc_srate 48000
auplay_srate 48000
ausrc_channels 2
auplay_channels 2
CONF
echo "<sip:100@127.0.0.1>;regint=0;answermode=auto;mediaenc=srtp-mand" >"$WORK/carrier/accounts"
: >"$WORK/carrier/contacts"
baresip -s -f "$WORK/carrier" </dev/null >"$WORK/carrier.log" 2>&1 &
PIDS+=($!)
check "the carrier baresip is up" "$WORK/carrier.log" "baresip is ready"

export DIALERD__SIP__TLS_LISTEN="127.0.0.1:$TLS_PORT"
export DIALERD__SIP__TLS_CERTIFICATE="$WORK/sip.pem" DIALERD__SIP__TLS_PRIVATE_KEY="$WORK/sip.key"
export DIALERD__SIP__RELAY_PREFIX=9 DIALERD__MEDIA__RECORD_RELAY=true
# The legs log their keys and the first packet of each kind they drop.
export LOG_LEVEL=${LOG_LEVEL:-info,dialerd::media::leg=debug}
DIGEST='"MD5"' start_daemon "[[trunks]]
name = \"carrier\"
host = \"127.0.0.1\"
port = $((CARRIER_PORT + 1))
transport = \"tls\"
tls_ca = \"$WORK/ca.pem\"
media_encryption = \"srtp\"
keepalive = \"0s\""

BARESIP_EXTRA="sip_cafile $WORK/ca.pem
module srtp.so
module sndfile.so
snd_path $WORK/heard" \
    start_baresip "<sip:agent1@127.0.0.1:$TLS_PORT;transport=tls>;auth_pass=agent1-secret;regint=300;mediaenc=srtp-mand"
check "the phone registers over TLS" "$WORK/baresip.log" "200 OK"
say "/dial sip:9100@127.0.0.1:$TLS_PORT;transport=tls"
check "the carrier answers dialerd's call by itself" "$WORK/carrier.log" "Call established" 15
check "the phone's call through the relay is answered" "$WORK/baresip.log" "Call established" 15
offer=$(awk '/^INVITE sip:100@/ { on = 1 } on { print } on && /^a=(sendrecv|sendonly|recvonly|inactive)/ { exit }' "$WORK/carrier.log")
if grep -q "^m=audio [0-9]* RTP/SAVP " <<<"$offer" && grep -qE '^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:' <<<"$offer"; then
    pass "dialerd offers the TLS trunk RTP/SAVP with its keys"
else
    fail "dialerd's offer to the carrier has no RTP/SAVP with a=crypto"
fi
# Long enough for each baresip to send SRTCP (RTCP every 5 s).
sleep 7
say "/hangup"
check_metric dialerd_sip_dialogs_active 0 10 "the relayed call ends on both legs"
sleep 0.5
kill "${PIDS[0]}" 2>/dev/null || true # the carrier closes its dumps
heard=$(tone_hz "$(ls "$WORK"/heard/dump-*-dec.wav 2>/dev/null | head -1)" 0 2>/dev/null || echo 0)
if near "$heard" 880; then pass "the phone hears the carrier's 880 Hz, decrypted and re-encrypted ($heard Hz)"; else fail "the phone heard $heard Hz, not 880"; fi
for _ in $(seq 30); do ls "$WORK"/carrier-heard/dump-*-dec.wav >/dev/null 2>&1 && break; sleep 0.1; done
heard=$(tone_hz "$(ls "$WORK"/carrier-heard/dump-*-dec.wav 2>/dev/null | head -1)" 0 2>/dev/null || echo 0)
if near "$heard" 440; then pass "the carrier hears the phone's 440 Hz, decrypted and re-encrypted ($heard Hz)"; else fail "the carrier heard $heard Hz, not 440"; fi
wav=""
for _ in $(seq 50); do
    wav=$(find "$WORK/state/recordings" -name '*.wav' 2>/dev/null | head -1)
    [ -n "$wav" ] && grep -q "recording closed" "$WORK/dialerd.log" && break
    sleep 0.1
done
if [ -n "$wav" ]; then
    left=$(tone_hz "$wav" 0) right=$(tone_hz "$wav" 1)
    if near "$left" 440 && near "$right" 880; then
        pass "the recording holds both sides in clear (caller $left Hz, called $right Hz)"
    else
        fail "the recording has $left Hz and $right Hz, not 440 and 880"
    fi
else
    fail "no recording of the relayed call"
fi
check_srtp_drops
exit $FAILED
