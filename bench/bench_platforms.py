"""The real platform clients against the sandbox at catalogue scale, over loopback HTTP.

200,000 TikTok listing slots (100,000 products x 2 SKUs) read through products search, 2,000
inventory updates pushed at the store's rate limit, 200,000 Shopify levels and 200,000 ERP rows
read. Prints each step's time, requests and pages (from the sandbox's counts).
Usage: .venv/bin/python bench/bench_platforms.py [--products N] [--pushes N] [--rps R] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from invsync.api import InventorySource, Store
from invsync.engine.records import SlotUpdate
from invsync.providers import RetryPolicy, build_channel, build_source
from invsync.sandbox.server import Sandbox, run_sandbox
from report import emit, machine, table

LOCATION = "gid://shopify/Location/1"


def config(products: int, rps: float) -> dict[str, Any]:
    return {
        "tiktok": {
            "app_key": "bench-key",
            "app_secret": "bench-secret",
            "requestsPerSecond": rps,
            "shops": [
                {
                    "cipher": "ROW_bench",
                    "access_token": "bench-token",
                    "warehouses": [{"id": "7000", "is_default": True}],
                    "generate": {"products": products, "skusPerProduct": 2},
                }
            ],
        },
        "shopify": [
            {
                "shop": "bench",
                "access_token": "shpat_bench",
                "locations": [{"id": LOCATION, "name": "JKT"}],
                # far above any real plan: this measures the client and the sandbox, not the budget (a
                # 200-level page costs 803 points; at Plus' 1000 points/s, 200,000 levels take ~13 min)
                "throttle": {"maximumAvailable": 1_000_000, "restoreRate": 1_000_000},
                "generate": {"items": products * 2, "available": 5},
            }
        ],
        "erp": [{"name": "wms", "generate": {"items": products * 2, "available": 5, "locations": ["jkt"]}}],
    }


def resources(sb: Sandbox, rps: float) -> tuple[Store, InventorySource, InventorySource]:
    meta = {"apiVersion": "invsync.dev/v1alpha1"}
    store = Store.model_validate(
        meta
        | {
            "kind": "Store",
            "metadata": {"name": "bench"},
            "spec": {
                "platform": "tiktok",
                "endpoint": sb.url,
                "shopCipher": "ROW_bench",
                "credentialsSecretRef": {"name": "c"},
                "rateLimit": {"requestsPerSecond": rps, "burst": int(rps)},
            },
        }
    )
    shopify, erp = (
        InventorySource.model_validate(
            meta
            | {
                "kind": "InventorySource",
                "metadata": {"name": name},
                "spec": {"provider": provider, "endpoint": endpoint, "credentialsSecretRef": {"name": "c"}},
            }
        )
        for name, provider, endpoint in (
            ("bench", "shopify", f"{sb.url}/shopify/bench"),
            ("wms", "http", f"{sb.url}/erp/wms"),
        )
    )
    return store, shopify, erp


ROWS: list[list[str]] = []


async def step(sb: Sandbox, name: str, work: Any) -> Any:
    sb.state.reset_counts()
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    counts = sb.state.counts()
    pages = sum(counts["readPages"].values())
    print(
        f"{name:<34} {elapsed:7.2f} s  requests {counts['total']:>6}  pages {pages:>5}"
        f"  writes {counts['writes']['requests']:>5}",
        file=sys.stderr,
    )
    ROWS.append(
        [name, f"{elapsed:.2f} s", str(counts["total"]), str(pages), str(counts["writes"]["requests"])]
    )
    return result


async def main(products: int, pushes: int, rps: float) -> None:
    started = time.perf_counter()
    async with run_sandbox(config(products, rps)) as sb:
        print(f"{'sandbox start':<34} {time.perf_counter() - started:7.2f} s", file=sys.stderr)
        store, shopify_src, erp_src = resources(sb, rps)
        retry = RetryPolicy(attempts=8)
        channel = build_channel(
            store,
            {"app_key": "bench-key", "app_secret": "bench-secret", "access_token": "bench-token"},
            retry=retry,
        )
        listings = await step(sb, f"tiktok list {products * 2} slots", channel.list_listings())
        assert len(listings) == products * 2

        async def push_all() -> int:
            queue = [
                [SlotUpdate(f"gp{p}", f"gs{2 * p + j}", "7000", 7) for j in range(2)] for p in range(pushes)
            ]
            results = await asyncio.gather(*(channel.push(batch[0].product_id, batch) for batch in queue))
            return sum(o.ok for r in results for o in r)

        ok = await step(sb, f"tiktok push {pushes} products @{rps:g}/s", push_all())
        assert ok == 2 * pushes
        await channel.aclose()
        shopify = build_source(shopify_src, {"access_token": "shpat_bench"}, retry=retry)
        records = await step(sb, f"shopify read {products * 2} levels", shopify.read_stock([LOCATION]))
        assert len(records) == products * 2
        await shopify.aclose()
        erp = build_source(erp_src, None, retry=retry)
        rows = await step(sb, f"erp read {products * 2} rows", erp.read_stock(["jkt"]))
        assert len(rows) == products * 2
        await erp.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--pushes", type=int, default=2_000)
    parser.add_argument("--rps", type=float, default=200)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    asyncio.run(main(args.products, args.pushes, args.rps))
    push_bound = args.pushes / args.rps
    emit(
        f"### Platform clients against the sandbox over loopback HTTP\n\nMachine: {host}. One run."
        f" The push step's bound is {args.pushes:,} products / {args.rps:g} requests/s = {push_bound:.1f} s;"
        " reads have no rate limit here (they measure the client and the sandbox).\n\n"
        + table(["step", "time", "requests", "pages", "writes"], ROWS),
        args.markdown,
    )
