#!/usr/bin/env bash
# Simulator against daemon, a benchmark that prints both figures: one call-centre scenario run
# live on compressed times and the same scenario in `dialerd simulate`, in one dial mode.
#
# Live: AGENTS agents with SIP logins, registered (Digest MD5) with their Contact on one SIPp
# that auto-answers every session call and echoes RTP (sip-scenarios/agent/answer.xml); a SIPp
# carrier behind a trunk (sip-scenarios/dialer/carrier_random.xml, its chances and talk times
# set below) rings each call RING_MIN-RING_MAX ms, then answers with probability ANSWER and
# talks TALK_MIN-TALK_MAX s (uniform) before hanging up, or rings until dialerd gives up at
# 15 s. Agents post no result: each wrap-up lasts WRAP_UP s. The campaign dials for MINUTES;
# occupancy is the time average of (talking + wrap-up) / logged-in agents read from
# `dialerd_agents` every 0.25 s, abandon is abandoned / answered from the campaign's dialer
# figures.
# Simulated: the same agents, answer rate, ring, talk and wrap-up times, 15 s give-up, the
# daemon's calls per second (10) and lines per agent, for MINUTES of virtual time, over SEEDS
# seeds: mean and range.
#
#   sip-scenarios/load/agreement.sh [MODE=predictive]
#   environment: AGENTS=12 MINUTES=4 ANSWER=0.3 TALK_MIN=8 TALK_MAX=16 WRAP_UP=3
#                RING_MIN=200 RING_MAX=1000 R_READY=1.7 R_WRAP=0.1 (power) TARGET=0.03
#                (predictive) SEEDS=20 KEEP=1 (keep the work directory)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-predictive}
AGENTS=${AGENTS:-12}
MINUTES=${MINUTES:-4}
ANSWER=${ANSWER:-0.3}
TALK_MIN=${TALK_MIN:-8}
TALK_MAX=${TALK_MAX:-16}
WRAP_UP=${WRAP_UP:-3}
RING_MIN=${RING_MIN:-200}
RING_MAX=${RING_MAX:-1000}
R_READY=${R_READY:-1.7}
R_WRAP=${R_WRAP:-0.1}
TARGET=${TARGET:-0.03}
SEEDS=${SEEDS:-20}
PORT=${SIP_PORT:-5195}
HTTP=${HTTP_PORT:-9195}
CARRIER_PORT=${CARRIER_PORT:-5196}
PHONE_PORT=${PHONE_PORT:-5197}
ADMIN=agreement-bench-admin-token-0123456789

[ -x target/debug/dialerd ] || cargo build
work=$(mktemp -d)
trap 'kill $daemon $phones $carrier 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT

# The carrier: its answer chance, every other call ringing out, talk in quarter seconds.
sed -e "s/<nop next=\"answer\" chance=\"[0-9.]*\"\/>/<nop next=\"answer\" chance=\"$ANSWER\"\/>/" \
    -e 's/<nop next="ring_out" chance="[0-9.]*"\/>/<nop next="ring_out" chance="1"\/>/' \
    -e "s/<pause distribution=\"uniform\" min=\"[0-9]*\" max=\"[0-9]*\"\/>/<pause distribution=\"uniform\" min=\"$RING_MIN\" max=\"$RING_MAX\"\/>/" \
    -e "s/assign_to=\"ticks\" distribution=\"uniform\" min=\"[0-9]*\" max=\"[0-9]*\"/assign_to=\"ticks\" distribution=\"uniform\" min=\"$((TALK_MIN * 4))\" max=\"$((TALK_MAX * 4))\"/" \
    sip-scenarios/dialer/carrier_random.xml >"$work/carrier.xml"
grep -q "chance=\"$ANSWER\"" "$work/carrier.xml" && grep -q "min=\"$((TALK_MIN * 4))\"" "$work/carrier.xml" \
    || { echo "carrier_random.xml no longer has the knobs this script sets" >&2; exit 1; }

cat >"$work/dialerd.toml" <<CONF
state_dir = "$work/state"
[log]
level = "warn"
[http]
listen = "127.0.0.1:$HTTP"
[sip]
listen = ["127.0.0.1:$PORT"]
session_expires = "0s"
digest_algorithms = ["MD5"]
rate_limit_requests = 0
[media]
prompts_dir = "$PWD/prompts"
[sessions]
ring_timeout = "30s"
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = $CARRIER_PORT
max_calls = 1000
max_cps = 10.0
keepalive = "0s"
CONF
(cd sip-scenarios/dialer && exec sipp -sf "$work/carrier.xml" -i 127.0.0.1 -p "$CARRIER_PORT" -mp 46000 \
   -key rtp_port 46000 -nostdin -trace_logs -log_file "$work/carrier.log" >"$work/carrier.out" 2>&1) &
carrier=$!
(cd "$work" && exec sipp -sf "$OLDPWD/sip-scenarios/agent/answer.xml" -i 127.0.0.1 -p "$PHONE_PORT" -mp 41000 \
   -rtp_echo -nostdin "127.0.0.1:$PORT" >"$work/phone.out" 2>&1) &
phones=$!
DIALERD_ADMIN_TOKEN=$ADMIN target/debug/dialerd run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done

cat >"$work/scenario.toml" <<SCEN
name = "agreement"
description = "the live run of sip-scenarios/load/agreement.sh"
agents = $AGENTS
hours = $(python3 -c "print($MINUTES / 60)")
live_answer = $ANSWER
ring_to_answer = { kind = "uniform", min = $(python3 -c "print($RING_MIN / 1000)"), max = $(python3 -c "print($RING_MAX / 1000)") }
give_up = 15
talk = { kind = "uniform", min = $TALK_MIN, max = $TALK_MAX }
wrap_up = { kind = "fixed", value = $WRAP_UP }
wrap_up_limit = $WRAP_UP
max_cps = 10
abandon_target = $TARGET
[power]
r_ready = $R_READY
r_wrap = $R_WRAP
SCEN

echo "agreement         $MODE, $AGENTS agents, $MINUTES min, answer $ANSWER, ring $RING_MIN-$RING_MAX ms, talk $TALK_MIN-$TALK_MAX s, wrap-up $WRAP_UP s, power $R_READY/$R_WRAP, target $TARGET; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
HTTP=127.0.0.1:$HTTP SIP=127.0.0.1:$PORT PHONE_PORT=$PHONE_PORT ADMIN=$ADMIN MODE=$MODE AGENTS=$AGENTS \
MINUTES=$MINUTES WRAP_UP=$WRAP_UP R_READY=$R_READY R_WRAP=$R_WRAP TARGET=$TARGET SCENARIO=$work/scenario.toml SEEDS=$SEEDS python3 - <<'PY'
import hashlib, io, json, math, os, re, socket, statistics, subprocess, sys, time, wave
import urllib.request

HTTP, SIP, ADMIN, MODE = os.environ["HTTP"], os.environ["SIP"], os.environ["ADMIN"], os.environ["MODE"]
AGENTS, MINUTES = int(os.environ["AGENTS"]), float(os.environ["MINUTES"])
PASSWORD = "agreement-agent-secret"


def call(method, path, body=None, ctype="application/json", token=ADMIN):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{HTTP}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def metrics():
    with urllib.request.urlopen(f"http://{HTTP}/metrics", timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                # Every series carries node="…": keyed without it.
                k = re.sub(r'node="[^"]*",?', "", k).replace(",}", "}").replace("{}", "")
                out[k] = float(v)
        return out


def tone_wav(seconds):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"".join(int(12000 * math.sin(i * 440 * 2 * math.pi / 8000)).to_bytes(2, "little", signed=True)
                               for i in range(int(seconds * 8000))))
    return out.getvalue()


def register(sock, user, seq):
    """REGISTER with Digest MD5, Contact on the phones' SIPp."""
    host, port = SIP.split(":")
    local = sock.getsockname()
    call_id = f"agreement-{user}@127.0.0.1"

    def request(cseq, auth):
        return (f"REGISTER sip:{SIP} SIP/2.0\r\nVia: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{user}{cseq};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@{host}>;tag={user}{seq}\r\nTo: <sip:{user}@{host}>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{os.environ['PHONE_PORT']};transport=udp>\r\nExpires: 3600\r\n"
                f"{auth}Content-Length: 0\r\n\r\n").encode()

    def exchange(msg):
        for _ in range(5):
            sock.sendto(msg, (host, int(port)))
            try:
                while True:
                    data = sock.recv(65535).decode(errors="replace")
                    if call_id in data and not data.startswith("SIP/2.0 100"):
                        return data
            except socket.timeout:
                continue
        sys.exit(f"no answer to REGISTER of {user}")

    r = exchange(request(1, ""))
    challenge = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", r, re.M | re.I).group(1)
    p = dict((k.lower(), v.strip('"')) for k, v in re.findall(r'(\w+)\s*=\s*("[^"]*"|[^,\s]+)', challenge))
    md5 = lambda x: hashlib.md5(x.encode()).hexdigest()
    uri = f"sip:{SIP}"
    ha1, ha2 = md5(f"{user}:{p['realm']}:{PASSWORD}"), md5(f"REGISTER:{uri}")
    realm, nonce, cnonce = p["realm"], p["nonce"], f"{seq:08x}"
    auth = f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "qop" in p:
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        auth += f', qop=auth, nc=00000001, cnonce="{cnonce}", response="{response}"'
    else:
        auth += f', response="{md5(f"{ha1}:{nonce}:{ha2}")}"'
    if "opaque" in p:
        opaque = p["opaque"]
        auth += f', opaque="{opaque}"'
    r = exchange(request(2, auth + "\r\n"))
    if not r.startswith("SIP/2.0 200"):
        sys.exit(f"REGISTER {user}: {r.splitlines()[0]}")


c = call("POST", "/api/v1/campaigns", {"name": "agreement", "default_region": "DE", "time_zone": "Europe/Berlin"})["id"]
task = call("POST", f"/api/v1/campaigns/{c}/tasks", {"name": "dial", "kind": "call", "settings": {"queue": "sales"}})["id"]
call("PATCH", f"/api/v1/campaigns/{c}", {"calling_hours": {"from": "00:00", "to": "24:00"}})
call("PATCH", f"/api/v1/campaigns/{c}/tasks/{task}", {"settings": {
    "queue": "sales", "dial_mode": MODE, "wrap_up_seconds": int(os.environ["WRAP_UP"]),
    "ring_timeout_seconds": 15, "max_attempts": 1, "abandon_target": float(os.environ["TARGET"]),
    "calls_per_ready_agent": float(os.environ["R_READY"]), "calls_per_wrap_up_agent": float(os.environ["R_WRAP"])}})
contacts = int(AGENTS * MINUTES * 60)  # far more than a run can call
csv = "name,phone\n" + "".join(f"c{i},030 {10000000 + i}\n" for i in range(contacts))
call("POST", f"/api/v1/campaigns/{c}/contacts/import?phone=phone", csv.encode(), "text/csv")
call("PUT", f"/api/v1/campaigns/{c}/prompts/safe_harbour", tone_wav(3.0), "audio/wav")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(1.0)
ids = []
for i in range(AGENTS):
    u = call("POST", "/api/v1/users", {"name": f"agent{i}", "role": "agent", "sip_username": f"agent{i}",
                                       "sip_password": PASSWORD, "sip_digest": "md5", "tasks": [task]})
    register(sock, f"agent{i}", i)
    call("POST", f"/api/v1/agents/{u['id']}/session", {"tasks": [task], "phone": "sip"})
    call("POST", f"/api/v1/agents/{u['id']}/ready")
    ids.append(u["id"])

call("PATCH", f"/api/v1/campaigns/{c}", {"status": "enabled"})
start = time.time()
busy_sum = present_sum = 0.0
while time.time() - start < MINUTES * 60:
    m = metrics()
    n = lambda s: m.get(f'dialerd_agents{{state="{s}",task="{task}"}}', 0.0)
    busy_sum += n("talking") + n("wrap_up")
    present_sum += sum(n(s) for s in ("ready", "reserved", "talking", "wrap_up", "paused"))
    time.sleep(0.25)
live_fig = call("GET", f"/api/v1/campaigns/{c}/dialer")["tasks"][0]
call("PATCH", f"/api/v1/campaigns/{c}", {"status": "disabled"})
occupancy = busy_sum / present_sum if present_sum else 0.0
answered, abandoned = live_fig["answered"], live_fig["abandoned"]
live_abandon = abandoned / answered if answered else 0.0

sims = []
for seed in range(1, int(os.environ["SEEDS"]) + 1):
    out = subprocess.run(["target/debug/dialerd", "simulate", "--scenario", os.environ["SCENARIO"],
                          "--mode", MODE, "--seed", str(seed), "--json"], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    sims.append(r[0] if isinstance(r, list) else r)
occ = [s["occupancy"] for s in sims]
ab = [s["abandon_ratio"] for s in sims]
print(f"live              placed {live_fig['placed']}, answered {answered}, abandoned {abandoned}: "
      f"occupancy {100 * occupancy:.1f} %, abandon {100 * live_abandon:.2f} %; decisions {live_fig.get('decisions')}")
print(f"simulated         {len(sims)} seeds, placed {statistics.mean(s['calls_placed'] for s in sims):.0f}, "
      f"answered {statistics.mean(s['live_answers'] for s in sims):.0f} on average: occupancy "
      f"{100 * statistics.mean(occ):.1f} % ({100 * min(occ):.1f}-{100 * max(occ):.1f}), abandon "
      f"{100 * statistics.mean(ab):.2f} % ({100 * min(ab):.2f}-{100 * max(ab):.2f}); fallback decisions "
      f"{ {k: round(statistics.mean(s['fallback_decisions'].get(k, 0) for s in sims)) for k in ('warming_up', 'abandon_cap')} }")
d_occ = 100 * (occupancy - statistics.mean(occ))
d_ab = 100 * (live_abandon - statistics.mean(ab))
verdict = "agree" if abs(d_occ) <= 5 and abs(d_ab) <= 1 else "DISAGREE"
print(f"difference        occupancy {d_occ:+.1f} points (within 5?), abandon {d_ab:+.2f} points (within 1?): {verdict}")
PY
echo "load              $(cut -d' ' -f1-3 /proc/loadavg) at the end; dialerd warnings: $(grep -c WARN "$work/dialerd.log" || true)"
