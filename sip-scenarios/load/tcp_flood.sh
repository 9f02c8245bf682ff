#!/usr/bin/env bash
# TCP connection flood on the SIP port: CONNS connections from SOURCES loopback addresses,
# each sending one partial message a byte at a time, held for SECONDS. Prints how many the
# daemon kept, its open file descriptors and RSS, /healthz latency and whether a SIP request
# over UDP is still answered. A benchmark, never part of the test suite.
#
#   sip-scenarios/load/tcp_flood.sh [CONNS=20000] [SECONDS=40] [SOURCES=100]
#   DIALERD=path/to/dialerd to measure another build (default target/release/dialerd).
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${1:-20000}
SECONDS_=${2:-40}
SOURCES=${3:-100}
PORT=${SIP_PORT:-5164}
HTTP=${HTTP_PORT:-9164}
BIN=${DIALERD:-target/release/dialerd}

[ -x "$BIN" ] || cargo build --release
# The flooding side needs a descriptor per connection: as many as the hard limit allows.
ulimit -n "$(ulimit -Hn)"
if [ "$CONNS" -gt $(( $(ulimit -n) - 200 )) ]; then
    CONNS=$(( $(ulimit -n) - 200 ))
    echo "note              this shell may open $(ulimit -n) files: flooding with $CONNS connections"
fi
work=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/dialerd.toml" <<EOF2
state_dir = "$work/state"
[log]
level = "warn"
[http]
listen = "127.0.0.1:$HTTP"
[sip]
listen = ["127.0.0.1:$PORT"]
EOF2
"$BIN" run --config "$work/dialerd.toml" 2>"$work/dialerd.log" &
daemon=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.1; done
python3 - "$daemon" "$PORT" "$HTTP" "$CONNS" "$SECONDS_" "$SOURCES" <<'PY'
import os, socket, sys, time, urllib.request
pid, port, http, conns, secs, sources = (int(a) for a in sys.argv[1:])

def fds():
    return len(os.listdir(f"/proc/{pid}/fd"))

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

def healthz_ms():
    t = time.time()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=5).read()
        return (time.time() - t) * 1000
    except Exception:
        return None

def options_answered():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    lp = s.getsockname()[1]
    msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK{time.time_ns()}\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
           f"Call-ID: {time.time_ns()}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", port))
    try:
        return s.recv(4096).split(b"\r\n")[0].decode()
    except socket.timeout:
        return "no answer"

fd0, rss0 = fds(), rss()
socks, refused = [], 0
t0 = time.time()
for i in range(conns):
    src = f"127.0.{1 + (i % sources) // 250}.{2 + (i % sources) % 250}"
    s = socket.socket()
    s.setblocking(False)
    try:
        s.bind((src, 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    except OSError:
        refused += 1
        s.close()
print(f"opened            {len(socks)} connections from {sources} sources in {time.time() - t0:.1f} s ({refused} failed locally)")
time.sleep(1)
peak_fd, peak_rss, slow = fds(), rss(), []
partial = b"INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1\r\n"
end = time.time() + secs
k = 0
while time.time() < end:
    # Feed one byte to every connection still open, a partial message that never ends.
    for s in socks:
        try:
            s.send(partial[k % len(partial):k % len(partial) + 1])
        except OSError:
            pass
    k += 1
    h = healthz_ms()
    slow.append(h)
    peak_fd, peak_rss = max(peak_fd, fds()), max(peak_rss, rss())
    time.sleep(1)
alive = 0
for s in socks:
    try:
        s.send(b"x")
        alive += 1
    except OSError:
        pass
ok = [h for h in slow if h is not None]
print(f"held by dialerd   {alive} still open after {secs} s")
print(f"dialerd fds       before {fd0}, peak {peak_fd}, at end {fds()}")
print(f"dialerd RSS       before {rss0} KiB, peak {peak_rss} KiB, at end {rss()} KiB")
print(f"/healthz          {len(slow)} probes, {len(slow) - len(ok)} failed, slowest {max(ok) if ok else 0:.0f} ms")
print(f"UDP OPTIONS       {options_answered()}")
for s in socks:
    s.close()
PY
kill -0 $daemon 2>/dev/null && echo "dialerd           still running" || echo "dialerd           DIED"
