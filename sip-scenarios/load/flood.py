#!/usr/bin/env python3
"""UDP flood of requests outside dialogs against a running dialerd, with one call in progress.

Places an echo call (from 127.0.0.1, a trusted trunk source) and keeps RTP flowing on it, then
floods METHOD requests (fresh branch and Call-ID each) from many loopback source addresses
(127.0.0.2 …) at RATE per second for SECONDS, sampling the daemon's RSS. Prints RSS
before/during/after, the rate achieved, the daemon's shed counters, and whether the call
survived (its echo kept coming and its BYE got 200). A benchmark: it prints, it never fails a
test run.

    flood.py PID SIP_PORT HTTP_PORT [RATE=50000] [SECONDS=60] [METHOD=OPTIONS] [SOURCES=200]
"""

import multiprocessing as mp
import os
import random
import socket
import sys
import threading
import time
import urllib.request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metrics(http_port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError as e:
        return f"# metrics unavailable: {e}"


def healthz_ms(http_port):
    start = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as r:
            r.read()
        return (time.monotonic() - start) * 1000
    except OSError:
        return None


def header(msg, name):
    for line in msg.split("\r\n"):
        n, _, v = line.partition(":")
        if n.strip().lower() == name.lower():
            return v.strip()
    return ""


class Call:
    """An echo call from 127.0.0.1 with RTP sent every 20 ms and echoes counted."""

    def __init__(self, target):
        self.target = target
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.settimeout(0.5)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.settimeout(0.1)
        self.echoes = []
        self.stop = False
        self.local = "127.0.0.1:%d" % self.sip.getsockname()[1]
        self.ok = None

    def send(self, text):
        self.sip.sendto(text.encode(), self.target)

    def final(self, cseq_method, limit=10):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                data = self.sip.recv(65535).decode(errors="replace")
            except socket.timeout:
                continue
            if data.startswith("SIP/2.0 ") and header(data, "CSeq").endswith(cseq_method):
                if int(data[8:11]) >= 200:
                    return data
        return None

    def start(self):
        sdp = (
            "v=0\r\no=flood 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.rtp.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        )
        self.send(
            f"INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {self.local};branch=z9hG4bK-held-1;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:flood@{self.local}>;tag=held\r\nTo: <sip:1000@127.0.0.1>\r\n"
            f"Call-ID: held-call@flood\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@{self.local}>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        ok = self.final("INVITE")
        if not ok or not ok.startswith("SIP/2.0 200"):
            return False
        self.ok = ok
        self.send(
            f"ACK sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {self.local};branch=z9hG4bK-held-ack\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:flood@{self.local}>;tag=held\r\nTo: {header(ok, 'To')}\r\n"
            f"Call-ID: held-call@flood\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        body = ok.split("\r\n\r\n", 1)[1]
        port = int([l for l in body.split("\r\n") if l.startswith("m=audio ")][0].split()[1])
        ip = [l for l in body.split("\r\n") if l.startswith("c=IN IP4 ")][0].split()[2]
        self.remote_rtp = (ip, port)
        threading.Thread(target=self.media, daemon=True).start()
        return True

    def media(self):
        seq = 0
        nxt = time.monotonic()
        while not self.stop:
            pkt = bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + b"\x11\x22\x33\x44" + b"\xff" * 160
            self.rtp.sendto(pkt, self.remote_rtp)
            seq = (seq + 1) & 0xFFFF
            nxt += 0.02
            while time.monotonic() < nxt:
                try:
                    self.rtp.recv(2048)
                    self.echoes.append(time.monotonic())
                except socket.timeout:
                    pass
                except OSError:
                    break

    def echoes_between(self, a, b):
        return sum(1 for t in self.echoes if a <= t < b)

    def bye(self):
        """BYE, retransmitted as a UA would (Timer E: 0.5 s doubling to 4 s, for 32 s)."""
        self.stop = True
        bye = (
            f"BYE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {self.local};branch=z9hG4bK-held-bye;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:flood@{self.local}>;tag=held\r\nTo: {header(self.ok, 'To')}\r\n"
            f"Call-ID: held-call@flood\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        )
        start = time.monotonic()
        interval = 0.5
        while time.monotonic() - start < 32:
            self.send(bye)
            resp = self.final("BYE", limit=interval)
            if resp:
                return "%s after %.1f s" % (resp.split("\r\n")[0], time.monotonic() - start)
            interval = min(interval * 2, 4)
        return "no answer in 32 s"


def sender(target, rate, seconds, method, ips, counter, seed):
    """One flooding process: `rate` requests/s round-robin over sockets on `ips`."""
    socks = []
    for ip in ips:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, 0))
        s.setblocking(False)
        socks.append((s, "%s:%d" % (ip, s.getsockname()[1])))
    rnd = random.Random(seed)
    tmpl = (
        method + " sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{n}x{r}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:flood@{src}>;tag=f{n}\r\nTo: <sip:1000@127.0.0.1>\r\n"
        "Call-ID: {n}x{r}@flood\r\nCSeq: 1 " + method + "\r\nContact: <sip:flood@{src}>\r\n"
        + ("Expires: 60\r\n" if method == "REGISTER" else "")
        + "Content-Length: 0\r\n\r\n"
    )
    sent = 0
    start = time.monotonic()
    end = start + seconds
    r = rnd.randrange(1 << 30)
    n = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate) - sent
        if due <= 0:
            time.sleep(0.001)
            continue
        for _ in range(min(due, 2000)):
            s, src = socks[n % len(socks)]
            n += 1
            try:
                s.sendto(tmpl.format(src=src, n=n, r=r).encode(), target)
                sent += 1
            except (BlockingIOError, OSError):
                pass
            # Drain answers now and then so our own buffers never hold us back.
            if n % 256 == 0:
                for s2, _ in socks:
                    try:
                        while True:
                            s2.recv(65535)
                    except (BlockingIOError, OSError):
                        pass
    with counter.get_lock():
        counter.value += sent


def main():
    pid, sip_port, http_port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rate = int(sys.argv[4]) if len(sys.argv) > 4 else 50000
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 60
    method = sys.argv[6] if len(sys.argv) > 6 else "OPTIONS"
    sources = int(sys.argv[7]) if len(sys.argv) > 7 else 200
    target = ("127.0.0.1", sip_port)
    procs_n = max(1, min(4, os.cpu_count() or 1))

    before = rss_kib(pid)
    call = Call(target)
    if not call.start():
        print("call in progress  could not be set up; no flood run")
        return
    time.sleep(1)

    ips = ["127.0.0.%d" % (2 + i % 250) for i in range(sources)]
    counter = mp.Value("q", 0)
    procs = [
        mp.Process(target=sender, args=(target, rate / procs_n, seconds, method, ips[i::procs_n], counter, i))
        for i in range(procs_n)
    ]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    peak = before
    health = []
    peak_txns = 0
    while any(p.is_alive() for p in procs):
        peak = max(peak, rss_kib(pid))
        h = healthz_ms(http_port)
        health.append(h)
        for line in metrics(http_port).splitlines():
            # Every series carries node="…".
            if line.startswith("dialerd_sip_transactions_active"):
                peak_txns = max(peak_txns, int(float(line.split()[1])))
        time.sleep(0.5)
    for p in procs:
        p.join()
    t1 = time.monotonic()
    during_echo = call.echoes_between(t0 + 1, t1)
    after_flood = rss_kib(pid)
    time.sleep(5)
    after_5s = rss_kib(pid)
    late_echo = call.echoes_between(t1 + 1, t1 + 5)
    bye = call.bye()
    m = metrics(http_port)

    flood_s = t1 - t0
    slow = [h for h in health if h is None or h > 1000]
    print(f"flood             {method} from {sources} loopback sources, offered {rate}/s for {seconds:.0f} s")
    print(f"sent              {counter.value} requests in {flood_s:.1f} s = {counter.value / flood_s:.0f}/s achieved")
    print(f"dialerd RSS       before {before} KiB, peak during {peak} KiB, at end {after_flood} KiB, 5 s after {after_5s} KiB")
    print(f"transactions      peak {peak_txns} active")
    ok_h = [h for h in health if h is not None]
    print(
        f"/healthz          {len(health)} probes during the flood, {len(slow)} failed or over 1 s"
        + (f", slowest {max(ok_h):.0f} ms" if ok_h else "")
    )
    print(f"call in progress  echo packets during flood {during_echo} (~{int((flood_s - 1) * 50)} sent), in the 4 s after {late_echo}; BYE -> {bye}")
    for line in m.splitlines():
        if line.startswith(("dialerd_sip_requests_shed_total", "dialerd_sip_transactions_active ", "dialerd_sip_dialogs_active ")):
            print("  " + line)


if __name__ == "__main__":
    main()
