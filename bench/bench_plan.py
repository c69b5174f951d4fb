"""Plan and diff 1,000,000 listing slots (200,000 SKUs x 5 stores, each fed by 3 warehouses).

Prints the time of each step and the peak memory. Target (issue 3): plan + diff under 3 s on one
core, under 1.5 GiB. Usage: .venv/bin/python bench/bench_plan.py [--skus N]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from typing import TypeVar

from invsync.api import Store, SyncRule, Warehouse
from invsync.engine import Listing, StockRecord, World, compute_plan, diff_plans

T = TypeVar("T")
STORES = 5
WAREHOUSES = 3


def build(skus: int) -> tuple[World, World]:
    """A base world and a head world that differs by one rule change (execution ratio 90 -> 80)."""
    warehouses = [
        Warehouse.model_validate(
            {
                "apiVersion": "invsync.dev/v1alpha1",
                "kind": "Warehouse",
                "metadata": {"name": f"wh-{w}", "labels": {"pool": "main"}},
                "spec": {"sourceRef": {"name": "wms"}, "locationId": f"loc-{w}"},
            }
        )
        for w in range(WAREHOUSES)
    ]
    stores = [
        Store.model_validate(
            {
                "apiVersion": "invsync.dev/v1alpha1",
                "kind": "Store",
                "metadata": {"name": f"store-{s}"},
                "spec": {"platform": "tiktok", "shopCipher": f"C{s}", "credentialsSecretRef": {"name": "t"}},
            }
        )
        for s in range(STORES)
    ]

    def rule(execution_ratio: int) -> SyncRule:
        return SyncRule.model_validate(
            {
                "apiVersion": "invsync.dev/v1alpha1",
                "kind": "SyncRule",
                "metadata": {"name": "all"},
                "spec": {
                    "stores": {"names": [s.name for s in stores]},
                    "warehouses": [{"selector": {"matchLabels": {"pool": "main"}}, "ratio": 20}],
                    "executionRatio": execution_ratio,
                    "outOfStockThreshold": 2,
                },
            }
        )

    names = [f"SKU-{i:07d}" for i in range(skus)]
    stock = [
        StockRecord("wms", f"loc-{w}", sku, (i * 7 + w * 13) % 400)
        for i, sku in enumerate(names)
        for w in range(WAREHOUSES)
    ]
    listings = [
        Listing(f"store-{s}", sku, f"p{i}", f"s{i}-{s}", "cw-1", (i * 3) % 300)
        for s in range(STORES)
        for i, sku in enumerate(names)
    ]
    base = World([rule(90)], stores, warehouses, stock, listings)
    head = World([rule(80)], stores, warehouses, stock, listings)
    return base, head


def _timed(step: Callable[[], T]) -> tuple[T, float, float]:
    """The step's result, wall seconds and CPU seconds (CPU shows the cost on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skus", type=int, default=200_000)
    args = parser.parse_args()
    (base, head), built, _ = _timed(lambda: build(args.skus))
    print(f"slots: {len(base.listings):,}  (world built in {built:.2f} s, not counted)")
    base_plan, wall_base, cpu_base = _timed(lambda: compute_plan(base))
    head_plan, wall_head, cpu_head = _timed(lambda: compute_plan(head))
    diff, wall_diff, cpu_diff = _timed(lambda: diff_plans(base_plan, head_plan))
    print(f"plan base:  {wall_base:.2f} s wall, {cpu_base:.2f} s cpu")
    print(f"plan head:  {wall_head:.2f} s wall, {cpu_head:.2f} s cpu")
    print(f"diff:       {wall_diff:.2f} s wall, {cpu_diff:.2f} s cpu  ({len(diff.rows):,} changed slots)")
    one = (wall_head + wall_diff, cpu_head + cpu_diff)
    both = (wall_base + one[0], cpu_base + one[1])
    print(f"plan + diff (one plan and the diff): {one[0]:.2f} s wall, {one[1]:.2f} s cpu")
    print(f"both plans + diff: {both[0]:.2f} s wall, {both[1]:.2f} s cpu")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (whole process, world included): {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
