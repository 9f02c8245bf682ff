#!/usr/bin/env bash
# linphonec (Debian's `linphone-cli`) as an agent's phone: REGISTER with digest, a call to the
# echo number, DTMF, hold (pause) and resume, hang-up.
# Usage: scripts/interop/linphone.sh   (after `cargo build`; KEEP=1 keeps the logs)
. "$(dirname "$0")/lib.sh"
start_daemon

rc=$WORK/linphonerc
cat >"$rc" <<RC
[sip]
sip_port=15072
sip_tcp_port=0
sip_tls_port=0
default_proxy=0
[rtp]
audio_rtp_port=17078
[sound]
capture_dev_id=
playback_dev_id=
[net]
mtu=1300
RC
mkdir -p "$WORK/.local/share/linphone"
mkfifo "$WORK/linphonec.in"
HOME=$WORK linphonec -c "$rc" -d 6 -l "$WORK/linphone-debug.log" <"$WORK/linphonec.in" >"$WORK/linphonec.log" 2>&1 &
PIDS+=($!)
exec 4>"$WORK/linphonec.in"
lsay() { printf '%s\n' "$1" >&4; }

# No sound card here: in file mode with no file playing, linphonec sends only the DTMF events.
lsay "soundcard use files"
lsay "register sip:agent1@127.0.0.1:$SIP_PORT sip:127.0.0.1:$SIP_PORT agent1-secret"
check "linphonec registers (digest SHA-256, the shipped defaults)" "$WORK/linphone-debug.log" "to [LinphoneRegistrationOk]" 10
if grep -q 'algorithm=SHA-256, username="agent1"' "$WORK/linphone-debug.log"; then pass "linphonec answers the SHA-256 challenge"; else fail "linphonec did not use SHA-256"; fi
lsay "call sip:1000@127.0.0.1:$SIP_PORT"
check "linphonec's call to the echo number is answered" "$WORK/linphonec.log" "connected." 10
check_metric dialerd_sip_dialogs_active 1 5 "dialerd holds one dialog"
sleep 1
lsay "1"
sleep 1
lsay "5"
check "DTMF 1 (RFC 4733) reaches dialerd" "$WORK/dialerd.log" "digit=1" 5
check "DTMF 5 (RFC 4733) reaches dialerd" "$WORK/dialerd.log" "digit=5" 5
lsay "pause"
check "pause (hold): the re-INVITE is answered, the call is paused" "$WORK/linphonec.log" "is now paused" 10
if sed -n '/a=sendonly/,$p' "$WORK/linphone-debug.log" | grep -q "a=recvonly"; then
    pass "hold: dialerd answers the sendonly re-INVITE with recvonly"
else
    echo "KNOWN: hold: dialerd answers linphonec's sendonly re-INVITE with its last SDP (a=sendrecv)"
fi
lsay "resume"
sleep 2
if [ "$(grep -c "Media streams established" "$WORK/linphonec.log")" -ge 2 ]; then pass "resume: media flows again"; else fail "resume"; fi
lsay "terminate"
check "linphonec hangs up" "$WORK/linphonec.log" "ended (No error)" 5
check_metric dialerd_sip_dialogs_active 0 5 "dialerd ends the dialog on linphonec's BYE"
if grep -E "ortp-message-received +[1-9][0-9]* packets" "$WORK/linphone-debug.log" >/dev/null; then
    pass "the echo sends linphonec's RTP back"
else
    fail "linphonec received no RTP"
fi
lsay "quit"
exit $FAILED
