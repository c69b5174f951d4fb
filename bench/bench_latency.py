"""Latency of single-SKU changes: ERP webhook arrival to the channel's acknowledgement, through `invsync run`
on a real control plane, with a rate limit far above the load (no contention).

Each change is `POST /_sandbox/stock` (the sandbox sets the stock and delivers the signed webhook to the
operator before it answers); the next starts once the sandbox holds the pushed quantity. Two views:
outside, from the POST to the sandbox holding the new quantity (polled every millisecond); inside, the
operator's invsync_change_to_push_seconds histogram (webhook arrival to push acknowledgement),
quantiles interpolated within its buckets as Prometheus' histogram_quantile does. Target: p95 < 1 s.
Usage: .venv/bin/python bench/bench_latency.py [--changes 1000] [--runs 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx

from harness import (
    CHANNEL_WAREHOUSE,
    LOCATION,
    Operator,
    World,
    control_plane,
    running,
    sync_runs,
    wait_for,
)
from invsync.testing.cluster import ControlPlane
from report import emit, log, machine, median, percentile, table

METRIC = "invsync_change_to_push_seconds"
QUANTILES = (50.0, 95.0, 99.0)


def buckets(op: Operator) -> dict[float, float]:
    """Upper bound -> cumulative count of the operator's change-to-push histogram."""
    text = httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5).text
    result: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(METRIC + "_bucket{"):
            head, value = line.rsplit(" ", 1)
            le = head.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            result[bound] = result.get(bound, 0.0) + float(value)
    return result


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]]
    rank, lower, below = q * total, 0.0, 0.0
    for upper in bounds:
        count = cumulative[upper]
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return bounds[-1]


def one_run(plane: ControlPlane, world: World, changes: int, run: int) -> dict[str, float]:
    with running(plane, world, f"lat{run}") as env:
        sb, op = env.sandbox, env.operator
        env.apply(world.rule_manifests())
        wait_for(lambda: sync_runs(op) >= 1, what="the rule's first sync", timeout=120)
        before = buckets(op)
        outside: list[float] = []
        skus = sb.state.tiktok[world.cipher(0)].by_seller_sku
        rows = sb.state.erp["wms"].rows
        with httpx.Client(base_url=f"{sb.url}/_sandbox", timeout=30) as admin:
            for i in range(changes):
                sku = f"SKU-{i % world.products:07d}"
                slot = skus[sku][0].inventory
                quantity = rows[(LOCATION, sku)].available + 1
                started = time.perf_counter()
                answer = admin.post(
                    "/stock", json={"source": "wms", "location": LOCATION, "sku": sku, "available": quantity}
                ).json()
                assert answer["webhook"]["status"] < 300, answer
                deadline = started + 60
                while slot[CHANNEL_WAREHOUSE] != quantity:
                    if time.perf_counter() > deadline:
                        raise AssertionError(f"{sku} never reached {quantity}; see {op.log}")
                    time.sleep(0.001)
                outside.append(time.perf_counter() - started)
        wait_for(
            lambda: buckets(op)[float("inf")] - before.get(float("inf"), 0.0) >= changes,
            what="every change in the operator's histogram",
            timeout=30,
        )
        after = buckets(op)
        inside = {b: after[b] - before.get(b, 0.0) for b in after}
        result = {f"out_p{q:g}": percentile(outside, q) for q in QUANTILES}
        result |= {f"in_p{q:g}": histogram_quantile(q / 100, inside) for q in QUANTILES}
        result["inside_count"] = inside[float("inf")]
        result["out_max"] = max(outside)
        log(f"run {run}: {result}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--products", type=int, default=1000, help="catalogue size (changes cycle it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    world = World(stores=1, products=args.products, rps=1000, listed=7)
    host = machine()
    with control_plane() as plane:
        runs = [one_run(plane, world, args.changes, i) for i in range(args.runs)]

    def cell(key: str) -> str:
        return f"{median([r[key] for r in runs]) * 1000:.0f} ms"

    outside = [cell(f"out_p{q:g}") for q in QUANTILES]
    inside = [cell(f"in_p{q:g}") for q in QUANTILES]
    rows = [
        ["outside: POST /_sandbox/stock -> the sandbox holds the quantity", *outside, cell("out_max")],
        ["inside: invsync_change_to_push_seconds (bucket-interpolated)", *inside, ""],
    ]
    emit(
        f"### Latency: {args.changes:,} single-SKU changes, one at a time, {world.rps:g} requests/s limit\n\n"
        f"Machine: {host}. Median of {len(runs)} run(s) of {args.changes:,} changes; target p95 < 1 s"
        " (the bound: one webhook delivery and one inventory update, a few ms over loopback).\n\n"
        + table(["view", "p50", "p95", "p99", "max"], rows),
        args.markdown,
    )


if __name__ == "__main__":
    main()
