"""Steady state: an unchanged world re-synced 10 times by `invsync run` on a real control plane.

`--rules` SyncRules, each with its own store listing `--listings` slots in total (split evenly), all
already equal to the ERP's stock. After every rule's first sync, each rule runs 10 more full syncs
(its `interval`); the platform must see zero inventory updates and Kubernetes zero writes to the
invsync objects (resourceVersions unchanged) and zero new Events. Reports the operator's CPU seconds
per round (all rules once) and its RSS, for each size given (the growth shows the scaling).
Usage: .venv/bin/python bench/bench_steady.py [--rules 100] [--listings 10000 100000] [--resyncs 10]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import httpx

from harness import (
    ERP_PAGE,
    TIKTOK_PAGE,
    Env,
    Operator,
    World,
    control_plane,
    mismatched,
    process_usage,
    resource_versions,
    running,
    tiktok_calls,
    wait_for,
)
from invsync.testing.cluster import ControlPlane
from report import emit, log, machine, table

HEADER = [
    "listings", "syncs", "inventory updates", "invsync objects written", "new Events",
    "pages read / bound (all requests)", "operator CPU per round", "CPU share", "RSS now / peak",
]  # fmt: skip


def runs_per_rule(op: Operator, rules: int) -> list[float]:
    """Sync runs of each rule, from one scrape of /metrics."""
    runs = [0.0] * rules
    text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("invsync_sync_runs_total{"):
            head, value = line.rsplit(" ", 1)
            rule = head.split('rule="rule-', 1)[1].split('"', 1)[0]
            runs[int(rule)] += float(value)
    return runs


def events(env: Env) -> int:
    out = env.kubectl("get", "events", "-n", env.namespace, "-o", "json", check=True).stdout
    return len(json.loads(out)["items"])


def one_size(plane: ControlPlane, rules: int, listings: int, resyncs: int, interval: str) -> dict[str, float]:
    world = World(stores=rules, products=listings // rules, rps=100, listed=7, rules=rules, interval=interval)
    with running(plane, world, f"steady{listings}") as env:
        sb, op = env.sandbox, env.operator
        assert op.proc is not None
        assert mismatched(sb, world) == 0
        started = time.perf_counter()
        env.apply(world.rule_manifests())
        wait_for(lambda: min(runs_per_rule(op, rules)) >= 2, what="every rule's first 2 syncs", timeout=1800)
        log(f"{listings:,} listings: every rule synced twice after {time.perf_counter() - started:.0f} s")
        first = runs_per_rule(op, rules)
        versions, n_events = resource_versions(env), events(env)
        sb.state.reset_counts()
        cpu0, _, _ = process_usage(op.proc.pid)
        t0 = time.perf_counter()
        wait_for(
            lambda: all(n >= f + resyncs for n, f in zip(runs_per_rule(op, rules), first, strict=True)),
            what=f"{resyncs} more syncs of every rule",
            timeout=3600,
        )
        wall = time.perf_counter() - t0
        cpu1, rss, peak = process_usage(op.proc.pid)
        changed = {k: (v, versions.get(k)) for k, v in resource_versions(env).items() if versions.get(k) != v}
        counts = sb.state.counts()
        syncs = sum(runs_per_rule(op, rules)) - sum(first)
        pages_per_sync = math.ceil(world.products / TIKTOK_PAGE) + math.ceil(world.products / ERP_PAGE)
        result = {
            "listings": float(listings),
            "syncs": syncs,
            "writes": float(sum(tiktok_calls(sb, "inventory_update").values())),
            "k8s_writes": float(len(changed)),
            "events": float(events(env) - n_events),
            "requests": float(counts["total"]),
            "pages": float(sum(counts["readPages"].values())),
            "pages_bound": syncs * pages_per_sync,
            "cpu_per_round": (cpu1 - cpu0) / (syncs / rules),
            "cpu_share": (cpu1 - cpu0) / wall,
            "rss": rss,
            "peak": peak,
            "wall": wall,
        }
        log(f"{listings:,} listings: {result}; changed objects: {changed}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--listings", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--resyncs", type=int, default=10)
    parser.add_argument("--interval", default="10s", help="each rule's interval (a re-sync each)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    with control_plane() as plane:
        results = [one_size(plane, args.rules, n, args.resyncs, args.interval) for n in args.listings]
    rows = [
        [
            f"{r['listings']:,.0f}",
            f"{r['syncs']:.0f}",
            f"**{r['writes']:.0f}**",
            f"**{r['k8s_writes']:.0f}**",
            f"{r['events']:.0f}",
            f"{r['pages']:,.0f} / {r['pages_bound']:,.0f} ({r['requests']:,.0f})",
            f"{r['cpu_per_round']:.2f} s",
            f"{r['cpu_share'] * 100:.0f} %",
            f"{r['rss']:.0f} / {r['peak']:.0f} MiB",
        ]
        for r in results
    ]
    emit(
        f"### Steady state: {args.rules} rules, each re-synced {args.resyncs} times"
        f" (interval {args.interval}), nothing changed\n\n"
        f"Machine: {host}. One run per size (each is {args.resyncs} rounds of every rule)."
        " Target and bound: 0 inventory updates, 0 writes to invsync objects;"
        " reads are the bound (every page once per sync).\n\n" + table(HEADER, rows),
        args.markdown,
    )


if __name__ == "__main__":
    main()
