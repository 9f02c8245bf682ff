#!/usr/bin/env python3
"""The several-nodes benchmark's API side, run by nodes.sh once the nodes, their phone SIPps,
the carrier and PostgreSQL are up: per node a predictive campaign (one call task) and N
agents logged in on that node, so that each node holds its own task's lease; all campaigns
dial for MINUTES; then per node CPU, RSS, calls placed and answered per second,
answer-to-agent and store latency (dialerd_store_seconds{op}, and PostgreSQL's own view from
pg_stat_statements), and the overall calls per second. With two nodes or more, the lease
take-over: the first node dials its campaign again, an agent of the second node logs in for
that task (it waits, the task held elsewhere), the first node is SIGKILLed, and the time is
measured until the second node's GET /api/v1/nodes shows the task as its own and until it
places a call for it.

    nodes.py N MINUTES  (environment: NODES="name,http,sip,phone_port,pid ...", ADMIN, PG_URL)
"""
import os
import re
import signal
import subprocess
import sys
import time

from bench import (Node, answer_to_agent, bucket_quantile, campaign, login_all, make_agents, quantile,
                   step, total, WRAP_UP)

N = int(sys.argv[1])
MINUTES = float(sys.argv[2])
NODES = [Node(http, sip, phone, int(pid), os.environ["ADMIN"], name)
         for name, http, sip, phone, pid in (n.split(",") for n in os.environ["NODES"].split())]
K = len(NODES)
HZ = os.sysconf("SC_CLK_TCK")
STORE_OPS = ("lease_contacts", "release_lease", "task_lease", "node_heartbeat")


def psql(sql):
    return subprocess.run(["psql", "-X", "-q", "-A", "-F", " | ", "-t", "-c", sql, os.environ["PG_URL"]],
                          check=True, capture_output=True, text=True).stdout


def placed_answered(m, c, task):
    """Campaign `c`'s calls placed (recorded, or in flight for its `task`) and answered
    (recorded) on a node."""
    results = {k.split('result="')[1].rstrip('"}'): v for k, v in m.items()
               if k.startswith(f'dialerd_dialer_calls_total{{campaign="{c}"')}
    answered = sum(results.get(r, 0) for r in ("connected", "no_result", "abandoned"))
    return sum(results.values()) + m.get(f'dialerd_calls_in_flight{{task="{task}"}}', 0), answered


def holder(node, task):
    v = node.ok("GET", "/api/v1/nodes")
    return next((t["node"] for t in v["tasks"] if t["task_id"] == task), None)


t = time.time()
contacts = max(1000, int(N * MINUTES * 60 / 2))
camps = [campaign(node, f"nodes bench {node.name}", contacts) for node in NODES]
t = step(f"{K} campaigns, {contacts} contacts each", t)
tokens = [make_agents(node, range(j * N, (j + 1) * N), [camps[j][1]]) for j, node in enumerate(NODES)]
# The second node's agent for the first node's task, logged in for the take-over only.
standby = make_agents(NODES[1], [K * N], [camps[0][1]])[0] if K > 1 else None
t = step(f"{K * N} agents created", t)
for j, node in enumerate(NODES):
    node.register(range(j * N, (j + 1) * N))
if standby:
    NODES[1].register([K * N])
t = step(f"{K * N} phones registered", t)
for j, node in enumerate(NODES):
    errors = login_all(node, tokens[j], [camps[j][1]])
    if errors:
        print(f"{node.name}: login failures: {len(errors)}, first: {errors[0]}")
t = step(f"{K * N} agents logged in and ready", t)

psql("SELECT pg_stat_statements_reset()")
m0 = [node.metrics() for node in NODES]
c0, t0 = [node.cpu_ticks() for node in NODES], time.time()
for j, node in enumerate(NODES):
    node.ok("PATCH", f"/api/v1/campaigns/{camps[j][0]}", body={"status": "enabled"})
peak_rss = [node.rss_kib() for node in NODES]
while time.time() - t0 < MINUTES * 60:
    time.sleep(10)
    line = []
    for j, node in enumerate(NODES):
        m = node.metrics()
        peak_rss[j] = max(peak_rss[j], node.rss_kib())
        placed, answered = placed_answered(m, *camps[j])
        line.append(f"{node.name}: {placed:.0f} placed, {total(m, 'dialerd_calls_in_flight'):.0f} in flight, "
                    f"CPU {100 * (node.cpu_ticks() - c0[j]) / HZ / (time.time() - t0):.0f} %")
    print(f"{time.time() - t0:5.0f} s  " + "; ".join(line), flush=True)
m1 = [node.metrics() for node in NODES]
c1, t1 = [node.cpu_ticks() for node in NODES], time.time()
secs = t1 - t0
statements = psql(
    "SELECT calls, round(mean_exec_time::numeric, 2), round(max_exec_time::numeric, 1), "
    "regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements "
    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench') "
    "ORDER BY total_exec_time DESC LIMIT 8")
for j, node in enumerate(NODES):
    node.ok("PATCH", f"/api/v1/campaigns/{camps[j][0]}", body={"status": "disabled"})

print(f"\n{K} node(s), {N} agents each, {secs:.0f} s of dialing; {os.cpu_count()} cores, "
      f"load {open('/proc/loadavg').read().split()[:3]} at the end")
print("| nodes | node | CPU % | RSS MiB | placed/s | answered/s | bridged | answer→agent p50 / p99 ms "
      "| lease_contacts p50 / p99 ms (n) | release_lease p50 / p99 ms (n) | task_lease p99 ms (n) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
overall_placed = overall_answered = 0
for j, node in enumerate(NODES):
    m = m1[j]
    placed, answered = placed_answered(m, *camps[j])
    overall_placed += placed
    overall_answered += answered
    # Summed over the histogram's `agent` label (ready at the answer, or awaited).
    buckets, bridged = answer_to_agent(m)

    def ms(op, q):
        return 1000 * quantile(m, q, "dialerd_store_seconds", f'op="{op}",')

    def n_op(op):
        return m.get(f'dialerd_store_seconds_count{{op="{op}"}}', 0) - m0[j].get(f'dialerd_store_seconds_count{{op="{op}"}}', 0)

    print(f"| {K} | {node.name} | {100 * (c1[j] - c0[j]) / HZ / secs:.0f} | {peak_rss[j] / 1024:.0f} "
          f"| {placed / secs:.2f} | {answered / secs:.2f} | {bridged:.0f} "
          f"| ≤{1000 * bucket_quantile(buckets, bridged, 0.5):.0f} / "
          f"≤{1000 * bucket_quantile(buckets, bridged, 0.99):.0f} "
          f"| ≤{ms('lease_contacts', 0.5):g} / ≤{ms('lease_contacts', 0.99):g} ({n_op('lease_contacts'):.0f}) "
          f"| ≤{ms('release_lease', 0.5):g} / ≤{ms('release_lease', 0.99):g} ({n_op('release_lease'):.0f}) "
          f"| ≤{ms('task_lease', 0.99):g} ({n_op('task_lease'):.0f}) |")
print(f"overall           {overall_placed / secs:.2f} calls/s placed, {overall_answered / secs:.2f} answered "
      f"({overall_placed:.0f} / {overall_answered:.0f} in {secs:.0f} s)")
print("PostgreSQL        the statements of the dialing by total time (pg_stat_statements): "
      "calls | mean ms | max ms | statement")
for row in statements.strip().splitlines():
    print(f"                  {row}")

# The calls still in flight end (customers talk at most 20 s, ring at most 15 s, wrap-up).
deadline = time.time() + 90
while time.time() < deadline and any(total(n.metrics(), "dialerd_calls_in_flight") for n in NODES):
    time.sleep(1)
time.sleep(WRAP_UP + 2)

if K > 1:
    first, second = NODES[0], NODES[1]
    c, task = camps[0]
    first.ok("PATCH", f"/api/v1/campaigns/{c}", body={"status": "enabled"})
    deadline = time.time() + 30
    before = placed_answered(first.metrics(), c, task)[0]
    while placed_answered(first.metrics(), c, task)[0] == before or holder(second, task) != first.name:
        if time.time() > deadline:
            sys.exit(f"{first.name} does not dial its campaign again")
        time.sleep(0.2)
    errors = login_all(second, [standby], [task])
    if errors:
        sys.exit(f"standby agent on {second.name}: {errors[0]}")
    time.sleep(2)
    base = placed_answered(second.metrics(), c, task)[0]
    os.kill(first.pid, signal.SIGKILL)
    killed = time.time()
    lease_s = call_s = None
    while time.time() - killed < 60 and call_s is None:
        if lease_s is None and holder(second, task) == second.name:
            lease_s = time.time() - killed
        if lease_s is not None and placed_answered(second.metrics(), c, task)[0] > base:
            call_s = time.time() - killed
        time.sleep(0.1)
    fmt = lambda s: "not within 60 s" if s is None else f"{s:.1f} s"
    print(f"take-over         {first.name} SIGKILLed: its task {task} shown as {second.name}'s by "
          f"GET /api/v1/nodes after {fmt(lease_s)}, first call placed by {second.name} after {fmt(call_s)}")
    second.ok("PATCH", f"/api/v1/campaigns/{c}", body={"status": "disabled"})
