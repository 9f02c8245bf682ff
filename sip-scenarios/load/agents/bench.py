#!/usr/bin/env python3
"""The agents benchmark's API side, run by agents.sh once dialerd and the SIPp phone and
carrier are up: creates N agents with SIP logins and tokens, a predictive campaign with
contacts and the safe-harbour message, registers the phones (Digest MD5 over UDP, Contact on
the phones' SIPp), logs the agents in and makes them ready, lets the campaign dial for
MINUTES, stops it, waits for the calls in flight, and prints the figures (one table row at
the end).

    bench.py N MINUTES  (environment: HTTP, SIP, PHONE_PORT, DAEMON_PID, ADMIN, STATE_DB)

Also a module: `Node` and the set-up steps are what nodes.py (several nodes) runs too.
"""
import hashlib
import io
import json
import math
import os
import re
import socket
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
import wave
from concurrent.futures import ThreadPoolExecutor

WRAP_UP = int(os.environ.get("WRAP_UP", "3"))
PASSWORD = "bench-agent-secret"
HERE = os.path.dirname(os.path.abspath(__file__))


class Node:
    """One daemon under test: its API and SIP addresses, the port of its agents' phone SIPp,
    its process (for CPU and RSS) and the admin token."""

    def __init__(self, http, sip, phone_port, pid, admin, name=""):
        self.http, self.sip, self.phone_port = http, sip, phone_port
        self.pid, self.admin, self.name = pid, admin, name

    def call(self, method, path, token=None, body=None, ctype="application/json", timeout=120):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.http}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin}")
        if data is not None:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def ok(self, method, path, token=None, body=None, ctype="application/json"):
        status, r = self.call(method, path, token, body, ctype)
        if status >= 300:
            sys.exit(f"{self.name} {method} {path}: {status} {r}")
        return r

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=30) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                # Every series carries node="…": keyed without it.
                name = re.sub(r'node="[^"]*",?', "", name).replace(",}", "}").replace("{}", "")
                out[name] = float(value)
        return out

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def register(self, indices):
        """Registers the phones of agents `indices` with this node, four sockets at a time."""
        def some(part):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(1.0)
            for i in part:
                sip_register(sock, self.sip, self.phone_port, f"agent{i}", i)
            sock.close()

        indices = list(indices)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(some, [indices[k::4] for k in range(4)]))


def total(m, prefix):
    return sum(v for k, v in m.items() if k.startswith(prefix))


def quantile(m, q, name="dialerd_answer_to_agent_seconds", labels=""):
    """An upper bound of the q-quantile of histogram `name` (its series with `labels`, e.g.
    'op="lease_contacts",'): its bucket's."""
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1).replace("+Inf", "inf")), v)
        for k, v in m.items()
        if k.startswith(f"{name}_bucket{{{labels}le=")
    )
    count = m.get(f"{name}_count{{{labels.rstrip(',')}}}" if labels else f"{name}_count", 0)
    if not count:
        return float("nan")
    return next(le for le, c in buckets if c >= q * count)


def answer_to_agent(m):
    """The answer-to-agent histogram's buckets {le: count} and count, summed over its `agent`
    label (ready: an agent was free at the answer; awaited: the customer waited for one)."""
    buckets = {}
    for k, v in m.items():
        if k.startswith("dialerd_answer_to_agent_seconds_bucket"):
            le = float(re.search(r'le="([^"]+)"', k).group(1).replace("+Inf", "inf"))
            buckets[le] = buckets.get(le, 0) + v
    return buckets, total(m, "dialerd_answer_to_agent_seconds_count")


def bucket_quantile(buckets, count, q):
    """An upper bound of the q-quantile: the bucket bound it falls under."""
    if not count:
        return float("nan")
    return next(le for le, c in sorted(buckets.items()) if c >= q * count)


def tone_wav(seconds):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(
            b"".join(
                int(12000 * math.sin(i * 440 * 2 * math.pi / 8000)).to_bytes(2, "little", signed=True)
                for i in range(int(seconds * 8000))
            )
        )
    return out.getvalue()


def step(what, t):
    print(f"{what:<18}{time.time() - t:6.1f} s", flush=True)
    return time.time()


def campaign(node, name, contacts, wrap_up=WRAP_UP):
    """A predictive campaign with `contacts` contacts and the safe-harbour message: (id, task)."""
    c = node.ok("POST", "/api/v1/campaigns", body={"name": name, "default_region": "DE", "time_zone": "Europe/Berlin"})["id"]
    task = node.ok("POST", f"/api/v1/campaigns/{c}/tasks", body={"name": "dial", "kind": "call", "settings": {"queue": "sales"}})["id"]
    node.ok("PATCH", f"/api/v1/campaigns/{c}", body={"calling_hours": {"from": "00:00", "to": "24:00"}})
    settings = {"queue": "sales", "dial_mode": "predictive", "wrap_up_seconds": wrap_up, "ring_timeout_seconds": 15}
    if os.environ.get("PLANNED_WAIT_MS"):
        settings["planned_wait_ms"] = int(os.environ["PLANNED_WAIT_MS"])
    node.ok("PATCH", f"/api/v1/campaigns/{c}/tasks/{task}", body={"settings": settings})
    # Numbers apart per campaign: several campaigns share the carrier's log.
    base = 10000000 + 1000000 * (c % 90)
    csv = "name,phone\n" + "".join(f"c{i},030 {base + i}\n" for i in range(contacts))
    node.ok("POST", f"/api/v1/campaigns/{c}/contacts/import?phone=phone", body=csv.encode(), ctype="text/csv")
    node.ok("PUT", f"/api/v1/campaigns/{c}/prompts/safe_harbour", body=tone_wav(3.0), ctype="audio/wav")
    return c, task


def make_agents(node, indices, tasks):
    """Agents `indices` (agent<i>) with SIP logins, allowed on `tasks`: their API tokens."""
    def make(i):
        u = node.ok("POST", "/api/v1/users", body={
            "name": f"agent{i}", "role": "agent", "sip_username": f"agent{i}",
            "sip_password": PASSWORD, "sip_digest": "md5", "tasks": tasks})
        return node.ok("POST", f"/api/v1/users/{u['id']}/tokens", body={"label": "bench"})["token"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(make, indices))


def sip_register(sock, sip, phone_port, user, seq):
    """Registers `user` with Digest (MD5, qop=auth when offered), Contact on the phone SIPp."""
    host, port = sip.split(":")
    local = sock.getsockname()
    call_id = f"bench-{user}-{seq}@127.0.0.1"

    def request(cseq, auth):
        return (f"REGISTER sip:{sip} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{user}{seq}{cseq};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@{host}>;tag={user}{seq}\r\n"
                f"To: <sip:{user}@{host}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{phone_port};transport=udp>\r\nExpires: 3600\r\n"
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
    if not r.startswith("SIP/2.0 401"):
        sys.exit(f"REGISTER {user}: {r.splitlines()[0]}")
    challenge = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", r, re.M | re.I).group(1)
    params = dict((k.lower(), v.strip('"')) for k, v in re.findall(r'(\w+)\s*=\s*("[^"]*"|[^,\s]+)', challenge))
    realm, nonce = params["realm"], params["nonce"]
    uri = f"sip:{sip}"
    md5 = lambda x: hashlib.md5(x.encode()).hexdigest()
    ha1, ha2 = md5(f"{user}:{realm}:{PASSWORD}"), md5(f"REGISTER:{uri}")
    auth = f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "qop" in params:
        cnonce = f"{seq:08x}"
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        auth += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = md5(f"{ha1}:{nonce}:{ha2}")
    auth += f', response="{response}"'
    if "opaque" in params:
        auth += f', opaque="{params["opaque"]}"'
    r = exchange(request(2, auth + "\r\n"))
    if not r.startswith("SIP/2.0 200"):
        sys.exit(f"REGISTER {user}: {r.splitlines()[0]}")


def login(node, tok, tasks):
    """Logs an agent in on `node` for `tasks` (SIP phone) and makes it ready: None, or what failed."""
    for _ in range(3):
        status, r = node.call("POST", "/api/v1/agent/session", tok, {"tasks": tasks, "phone": "sip"})
        if status < 300:
            break
        time.sleep(1)
    else:
        return f"session {status} {r}"
    status, r = node.call("POST", "/api/v1/agent/ready", tok)
    return None if status < 300 else f"ready {status} {r}"


def login_all(node, tokens, tasks):
    """Logs the agents of `tokens` in on `node`: the failures."""
    with ThreadPoolExecutor(16) as pool:
        return [e for e in pool.map(lambda tok: login(node, tok, tasks), tokens) if e]


def rtp(m):
    return total(m, 'dialerd_rtp_packets_total{direction="in"') + total(m, 'dialerd_rtp_packets_total{direction="out"')


def main():
    n = int(sys.argv[1])
    minutes = float(sys.argv[2])
    node = Node(os.environ["HTTP"], os.environ["SIP"], os.environ["PHONE_PORT"],
                int(os.environ["DAEMON_PID"]), os.environ["ADMIN"])
    t = time.time()
    # Enough contacts for ~ one call every 2 s per agent, never fewer than 1,000.
    contacts = max(1000, int(n * minutes * 60 / 2))
    c, task = campaign(node, "agents bench", contacts)
    t = step(f"campaign, {contacts} contacts imported", t)
    tokens = make_agents(node, range(n), [task])
    t = step(f"{n} agents created", t)
    node.register(range(n))
    t = step(f"{n} phones registered", t)
    errors = login_all(node, tokens, [task])
    if errors:
        print(f"login failures: {len(errors)}, first: {errors[0]}")
    t = step(f"{n - len(errors)} agents logged in and ready", t)
    run(node, n, minutes, c)


def run(node, n, minutes, c):
    """Lets campaign `c` dial for `minutes` with its agents logged in, and prints the figures."""
    m0 = node.metrics()
    rss0 = node.rss_kib()
    print(f"RSS idle with agents {rss0} KiB, agents {dict((k, v) for k, v in m0.items() if k.startswith('dialerd_agents{') and v)}")
    hz = os.sysconf("SC_CLK_TCK")
    # Agents logged in, nothing dialled: what the idle sessions alone cost.
    c0, t0, p0 = node.cpu_ticks(), time.time(), rtp(m0)
    time.sleep(10)
    idle_cpu = 100 * (node.cpu_ticks() - c0) / hz / (time.time() - t0)
    idle_pps = (rtp(node.metrics()) - p0) / (time.time() - t0)
    print(f"idle agents       {idle_cpu:.0f} % of one core, {idle_pps:.0f} RTP packets/s through dialerd (in + out)")
    m0 = node.metrics()
    c0, t0 = node.cpu_ticks(), time.time()
    node.ok("PATCH", f"/api/v1/campaigns/{c}", body={"status": "enabled"})
    peak_rss, peak_flight, peak_talking = rss0, 0, 0
    while time.time() - t0 < minutes * 60:
        time.sleep(5)
        m = node.metrics()
        rss = node.rss_kib()
        peak_rss = max(peak_rss, rss)
        flight = total(m, "dialerd_calls_in_flight")
        states = {}
        for k, v in m.items():
            if k.startswith("dialerd_agents{"):
                s = re.search(r'state="([a-z_]+)"', k).group(1)
                states[s] = states.get(s, 0) + int(v)
        peak_flight = max(peak_flight, flight)
        peak_talking = max(peak_talking, states.get("talking", 0))
        print(f"{time.time() - t0:5.0f} s  in flight {flight:5.0f}  agents {states}  "
              f"bridged {total(m, 'dialerd_answer_to_agent_seconds_count'):.0f}  RSS {rss} KiB  "
              f"CPU {100 * (node.cpu_ticks() - c0) / hz / (time.time() - t0):.0f} %", flush=True)
    c1, t1 = node.cpu_ticks(), time.time()
    run_pps = (rtp(node.metrics()) - rtp(m0)) / (t1 - t0)
    rss_run = node.rss_kib()
    node.ok("PATCH", f"/api/v1/campaigns/{c}", body={"status": "disabled"})
    # The calls still in flight end (customers talk at most 20 s, ring at most 15 s, wrap-up).
    deadline = time.time() + 90
    while time.time() < deadline:
        m = node.metrics()
        if total(m, "dialerd_calls_in_flight") == 0:
            break
        time.sleep(1)
    time.sleep(WRAP_UP + 2)
    m = node.metrics()
    live = node.ok("GET", f"/api/v1/campaigns/{c}/dialer")

    def result(r):
        return m.get(f'dialerd_dialer_calls_total{{campaign="{c}",result="{r}"}}', 0)

    results = {k.split('result="')[1].rstrip('"}'): int(v) for k, v in m.items()
               if k.startswith(f'dialerd_dialer_calls_total{{campaign="{c}"')}
    placed = sum(results.values()) + int(total(m, "dialerd_calls_in_flight"))
    abandoned = result("abandoned")
    answered = result("connected") + result("no_result") + abandoned
    buckets, bridged = answer_to_agent(m)
    # A customer answered and neither put through to an agent nor abandoned is a lost bridge.
    lost = answered - abandoned - bridged
    in_flight = total(m, "dialerd_calls_in_flight")
    # The store's call records count answers the driver may not have heard of.
    db = sqlite3.connect(f"file:{os.environ['STATE_DB']}?mode=ro", uri=True)
    calls_made, calls_answered = db.execute(
        "SELECT count(*), count(answered_at) FROM calls WHERE route = 'campaign'").fetchone()
    lost_store = calls_answered - abandoned - bridged
    cpu = 100 * (c1 - c0) / hz / (t1 - t0)
    p50, p99 = bucket_quantile(buckets, bridged, 0.5), bucket_quantile(buckets, bridged, 0.99)
    fast = buckets.get(0.1, 0)
    name = "dialerd_answer_to_agent_seconds"
    ready_n = m.get(f'{name}_count{{agent="ready"}}', 0)
    ready_p50, ready_p99 = (quantile(m, q, name, 'agent="ready",') for q in (0.5, 0.99))
    awaited_n = m.get(f'{name}_count{{agent="awaited"}}', 0)
    print(f"results           {results} (still in flight after the stop: {in_flight:.0f})")
    print(f"dialer            {json.dumps(live)}")
    print(f"store             {calls_made} campaign calls, {calls_answered} answered: {lost_store:.0f} answered, neither bridged nor abandoned")
    print(f"peak              {peak_flight:.0f} calls in flight, {peak_talking:.0f} agents talking")
    print(f"answer to agent   {bridged:.0f} bridged, {fast:.0f} within 100 ms, p50 ≤ {1000 * p50:.0f} ms, p99 ≤ {1000 * p99:.0f} ms (the histogram's bucket bounds)")
    print(f"  agent ready     {ready_n:.0f} bridged with an agent free at the answer: p50 ≤ {1000 * ready_p50:.0f} ms, p99 ≤ {1000 * ready_p99:.0f} ms")
    print(f"  agent awaited   {awaited_n:.0f} bridged after waiting for an agent to free up (the pacer's planned wait, ≤ 2 s)")
    lag_n = m.get("dialerd_answer_read_lag_seconds_count", 0)
    lag50, lag99 = (quantile(m, q, "dialerd_answer_read_lag_seconds") for q in (0.5, 0.99))
    print(f"answer read lag   {lag_n:.0f} answers read by the driver: p50 ≤ {1000 * lag50:.0f} ms, p99 ≤ {1000 * lag99:.0f} ms after the 200 OK")
    print("histogram         " + ", ".join(f"≤{le:g} s: {v:.0f}" for le, v in sorted(buckets.items())))
    print(f"dialerd CPU       {cpu:.0f} % of one core over {t1 - t0:.0f} s of dialing ({idle_cpu:.0f} % idle with the agents logged in); {run_pps:.0f} RTP packets/s")
    print(f"dialerd RSS       {rss0} KiB with agents idle, {rss_run} KiB at the end of dialing, peak {peak_rss} KiB")
    print("| N | minutes | CPU % | RSS MiB | RSS/agent KiB | p50 / p99 ms, all | p50 / p99 ms, agent ready (calls) | placed | answered | abandoned | lost (metrics / store) | idle CPU % |")
    print(f"| {n} | {minutes:g} | {cpu:.0f} | {peak_rss / 1024:.0f} | {peak_rss / n:.0f} | ≤{1000 * p50:.0f} / ≤{1000 * p99:.0f} | "
          f"≤{1000 * ready_p50:.0f} / ≤{1000 * ready_p99:.0f} ({ready_n:.0f}) | {placed} | {answered:.0f} | {abandoned:.0f} | {lost:.0f} / {lost_store:.0f} | {idle_cpu:.0f} |")


if __name__ == "__main__":
    main()
