#!/usr/bin/env python3
"""Runs the test binaries `cargo test` would run, several at a time.

`cargo test` runs its test binaries one after another. Most of ours spend their time waiting
on real timers (SIP retransmissions, ring and wrap-up times, lease expiries), so on a 2-core
machine running a few binaries side by side roughly halves the suite's wall time. Each binary
still runs its own tests on its own threads, as under `cargo test`. Side by side they are not
yet reliable (a unit test that needs particular ports free, campaigns that finish late under
load), so one at a time is the default.

Usage: run-tests.py [JOBS]   (default: $DIALERD_TEST_JOBS, else 1)

Builds with `cargo test --no-run`, runs every test binary (library, binary and integration
tests) from the package root as cargo would, the slowest known first, prints each binary's
output as it ends, whole and in cargo's own format (`running N tests`, a line per test,
`test result:`), then the doc tests, and a summary. The CPU-bound simulator, the several-nodes
and last-resort tests and the interop scripts run last, each alone.
Exits non-zero when anything failed.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

# Binaries run last, one at a time with nothing beside them: the pacing simulator keeps both
# cores busy on its own; the several-nodes test (three daemons, PostgreSQL, Kamailio) times
# lease take-overs that a loaded machine stretches past its limits; the interop scripts and
# the last-resort test (Kamailio in front of two nodes) pick ports before starting what binds
# them, which another binary may take meanwhile.
ALONE = ["cluster", "interop", "last_resort", "simulate"]

# Binaries known to take longest, started first so the tail of the run stays short. A binary
# missing from this list still runs (after these); a name here that no longer exists is ignored.
SLOWEST_FIRST = [
    "dialer_live_edges",
    "dialer_campaign",
    "console_audio",
    "dialer_live",
    "deb",
    "console",
    "nodes",
    "callbacks",
    "agents_session",
]


def test_binaries():
    """(name, path) of every test executable `cargo test` builds, built now."""
    out = subprocess.run(
        ["cargo", "test", "--no-run", "--message-format=json-render-diagnostics"],
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        kind = msg["target"]["kind"][0]
        name = msg["target"]["name"]
        label = name if kind == "test" else f"{name} ({kind})"
        found[label] = msg["executable"]
    rank = {n: i for i, n in enumerate(SLOWEST_FIRST)}
    return sorted(
        found.items(),
        key=lambda kv: (kv[0] in ALONE, rank.get(kv[0], len(rank)), kv[0]),
    )


def main():
    jobs = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DIALERD_TEST_JOBS", "1"))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.chdir(root)
    binaries = test_binaries()
    env = dict(os.environ)
    env.setdefault("CARGO", "cargo")
    env["CARGO_MANIFEST_DIR"] = root
    pending = list(binaries)
    running = []  # (label, process, log file, start)
    failed = []
    times = []
    started = time.monotonic()
    while pending or running:
        while pending and len(running) < jobs:
            # One to run alone waits for the others to end, and lets none start beside it.
            if running and (pending[0][0] in ALONE or running[0][0] in ALONE):
                break
            label, path = pending.pop(0)
            log = tempfile.TemporaryFile()
            proc = subprocess.Popen([path], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
            running.append((label, proc, log, time.monotonic()))
        time.sleep(0.2)
        for entry in list(running):
            label, proc, log, start = entry
            if proc.poll() is None:
                continue
            running.remove(entry)
            took = time.monotonic() - start
            times.append((took, label))
            log.seek(0)
            output = log.read().decode("utf-8", "replace")
            log.close()
            # Printed whole, as `cargo test` would, so that whoever reads the log (or parses
            # it) sees every test that ran, not only our one-line summary.
            print(f"     Running {label} ({os.path.relpath(path, root)})", flush=True)
            print(output.rstrip("\n") + "\n", flush=True)
            if proc.returncode == 0:
                print(f"==> ok      {label:<28} {took:6.1f} s\n", flush=True)
            else:
                failed.append((label, output))
                print(f"==> FAILED  {label:<28} {took:6.1f} s (exit {proc.returncode})\n", flush=True)
    doc = subprocess.run(["cargo", "test", "--doc"], cwd=root)
    if doc.returncode != 0:
        failed.append(("doc tests", ""))
    wall = time.monotonic() - started
    print(f"\n{len(binaries)} test binaries, {jobs} at a time, in {wall:.0f} s; slowest:")
    for took, label in sorted(times, reverse=True)[:8]:
        print(f"  {took:6.1f} s  {label}")
    if failed:
        print("\nfailed: " + ", ".join(label for label, _ in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
