#!/usr/bin/env python3
"""The predictive pacer over many seeds: runs `dialerd simulate` for each scenario and seed and
prints the README's table (occupancy lowest / mean / highest, abandoned for the day, highest
rolling 24 h, clock hours at or over the target, calls hung up while ringing).

Usage: benches/pacing/seeds.py [SEEDS=20] [SCENARIO ...]   (default: a b c d)
       DIALERD=path/to/dialerd (default target/release/dialerd), JOBS (default: the cores)

Scenarios are benches/pacing/scenario-X.toml, or paths to scenario files.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(binary, scenario, seed):
    out = subprocess.run(
        [binary, "simulate", "--scenario", scenario, "--mode", "predictive", "--seed", str(seed), "--json"],
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    ).stdout
    return json.loads(out)


def scenario_path(name):
    if os.path.exists(name):
        return name
    return os.path.join(ROOT, "benches", "pacing", f"scenario-{name.lower()}.toml")


def main():
    args = sys.argv[1:]
    seeds = int(args.pop(0)) if args and args[0].isdigit() else 20
    names = args or ["a", "b", "c", "d"]
    binary = os.environ.get("DIALERD", os.path.join(ROOT, "target", "release", "dialerd"))
    jobs = int(os.environ.get("JOBS", os.cpu_count() or 1))
    runs = [(n, s) for n in names for s in range(1, seeds + 1)]
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda r: run(binary, scenario_path(r[0]), r[1]), runs))
    print(f"| scenario | occupancy lowest / mean / highest | abandoned (day) mean / highest | "
          f"highest 24 h | clock hours at or over the target | hung up a day (would have answered) "
          f"| decisions capped, mean |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        rs = [r for (n, _), r in zip(runs, results) if n == name]
        occ = [100 * r["occupancy"] for r in rs]
        ab = [100 * r["abandon_ratio"] for r in rs]
        high24 = max(100 * r["highest_24h_abandon_ratio"] for r in rs)
        target = 0.03
        hours = [h for r in rs for h in r["hourly"] if h["live"]]
        over = [h for h in hours if h["abandoned"] / h["live"] >= target]
        worst = max(100 * h["abandoned"] / h["live"] for h in hours)
        hung = sum(r["hung_up_ringing"] for r in rs) / len(rs)
        would = sum(r["hung_up_would_have_answered"] for r in rs) / len(rs)
        placed = sum(r["calls_placed"] for r in rs) / len(rs)
        capped = sum(r["fallback_decisions"].get("cap", 0) for r in rs) / len(rs)
        print(f"| {rs[0]['scenario']} | {min(occ):.2f} / {sum(occ) / len(occ):.2f} / {max(occ):.2f} % "
              f"| {sum(ab) / len(ab):.2f} / {max(ab):.2f} % | {high24:.2f} % "
              f"| {len(over)} of {len(hours)} (worst {worst:.2f} %) "
              f"| {hung:,.0f} of {placed:,.0f} placed ({would:,.0f}) | {capped:,.0f} |")


if __name__ == "__main__":
    main()
