"""Convergence against the rate limit: `invsync run` on a real control plane pushes `--products` changed
products to each of `--stores` sandbox shops limited to `--rps` requests/s.

The bound is the time the platform's limit alone allows: changed products per store / rate limit (the
slowest store). The clock starts when the SyncRule is applied to a running operator and stops when
every slot in the sandbox matches. Target (issue 8): wall / bound <= 1.15, write calls / changed
products = 1.00, product-search pages = products / 100 per store.
Usage: .venv/bin/python bench/bench_convergence.py [--products 5000] [--stores 2] [--rps 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from harness import (
    ERP_PAGE,
    TIKTOK_PAGE,
    World,
    control_plane,
    mismatched,
    running,
    tiktok_calls,
    wait_converged,
)
from invsync.testing.cluster import ControlPlane
from report import emit, log, machine, median, table


def one_run(plane: ControlPlane, world: World, run: int) -> dict[str, float]:
    with running(plane, world, f"conv{run}") as env:
        sb = env.sandbox
        assert mismatched(sb, world) == world.stores * world.products, "the world must start out of sync"
        sb.state.reset_counts()
        bound = world.products / world.rps  # every store has the same number of changed products
        started = time.perf_counter()
        env.apply(world.rule_manifests())
        wait_converged(sb, world, timeout=bound * 3 + 120)
        wall_s = time.perf_counter() - started
        counts = sb.state.counts()
        writes = tiktok_calls(sb, "inventory_update")
        searches = tiktok_calls(sb, "products_search")
        result = {
            "wall": wall_s,
            "bound": bound,
            "ratio": wall_s / bound,
            "write_calls": sum(writes.values()),
            "writes_429": writes.get("429", 0),
            "writes_ok": counts["writes"]["requests"],
            "search_pages": counts["readPages"].get("tiktok", 0),
            "search_calls": sum(searches.values()),
            "erp_pages": counts["readPages"].get("http", 0),
            "total_requests": counts["total"],
        }
        log(f"run {run}: {result}, inventory update calls by HTTP status {writes}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=5000, help="changed products per store")
    parser.add_argument("--stores", type=int, default=2)
    parser.add_argument("--rps", type=float, default=100)
    parser.add_argument("--burst", type=int, default=50, help="the Stores' burst (the platform's is --rps)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    world = World(stores=args.stores, products=args.products, rps=args.rps, burst=args.burst)
    host = machine()
    with control_plane() as plane:
        runs = [one_run(plane, world, i) for i in range(args.runs)]
    changed = world.stores * world.products
    pages = world.stores * math.ceil(world.products / TIKTOK_PAGE)
    erp_pages = math.ceil(world.products / ERP_PAGE)

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    rows = [
        ["wall time until every slot matches", f"{med('wall'):.1f} s", f"{med('bound'):.1f} s", "", ""],
        [
            "wall / bound",
            f"**{med('ratio'):.3f}**",
            "1.000",
            "<= 1.15",
            " ".join(f"{r['ratio']:.3f}" for r in runs),
        ],
        [
            "inventory update calls / changed products",
            f"{med('write_calls'):.0f} / {changed} = **{med('write_calls') / changed:.2f}**",
            "1.00",
            "1.00",
            " ".join(f"{r['write_calls']:.0f} ({r['writes_429']:.0f} x 429)" for r in runs),
        ],
        [
            "product search pages (calls)",
            f"{med('search_pages'):.0f} ({med('search_calls'):.0f})",
            f"{pages}",
            f"{pages}",
            " ".join(f"{r['search_pages']:.0f}" for r in runs),
        ],
        ["ERP pages", f"{med('erp_pages'):.0f}", f"{erp_pages}", f"{erp_pages}", ""],
        ["all platform requests", f"{med('total_requests'):.0f}", "", "", ""],
    ]
    emit(
        f"### Convergence: {changed:,} changed slots ({world.products:,} products x {world.stores} stores),"
        f" {world.rps:g} requests/s per store (Store burst {world.burst})\n\n"
        f"Machine: {host}. Median of {len(runs)} runs;"
        " the bound is changed products per store / rate limit.\n\n"
        + table(["figure", "measured (median)", "bound", "target", "each run"], rows),
        args.markdown,
    )


if __name__ == "__main__":
    main()
