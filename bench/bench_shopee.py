"""A Shopee shop through the real ShopeeChannel against the sandbox, over loopback HTTP: what a full read
and a push cost in requests, and so how long they take at a Store's rate limit.

Shopee reads one item's models per call (get_model_list), so a full read costs about one request per
item: ceil(items/100) list pages + ceil(items/50) base-info calls + one model list per item with models.
Writes are one update_stock call per changed item (at most 50 models a call). The rate-limited steps
run at --rps through the client's token bucket, so their time is the bound the requests imply.
Usage: .venv/bin/python bench/bench_shopee.py [--items N] [--pushes N] [--rps R] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path
from typing import Any

from invsync.api import Store
from invsync.engine.records import SlotUpdate
from invsync.providers import RetryPolicy, build_channel
from invsync.providers import shopee as sp
from invsync.sandbox.server import Sandbox, run_sandbox
from report import emit, machine, table

SHOP_ID, WIDE_ITEM, WIDE_MODELS = 77, 1, 120
SECRET = {"partner_id": "2001", "partner_key": "bench-key", "access_token": "bench-token"}
LOCATIONS = ["IDZ", "IDW"]


def config(items: int) -> dict[str, Any]:
    wide = {
        "item_id": WIDE_ITEM,
        "models": [
            {
                "model_id": 1 + k,
                "model_sku": f"WIDE-{k}",
                "seller_stock": [{"location_id": loc, "stock": 1} for loc in LOCATIONS],
            }
            for k in range(WIDE_MODELS)
        ],
    }
    shop = {
        "shop_id": SHOP_ID,
        "access_token": "bench-token",
        "locations": [{"location_id": loc} for loc in LOCATIONS],
        "items": [wide],
        "generate": {"items": items, "modelsPerItem": 2, "stock": 5},
    }
    return {
        "shopee": {"partner_id": 2001, "partner_key": "bench-key", "requestsPerSecond": 1e6, "shops": [shop]}
    }


def channel(sb: Sandbox, rps: float) -> Any:
    store = Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": f"bench-{rps:g}"},
            "spec": {
                "platform": "shopee",
                "endpoint": f"{sb.url}/shopee",
                "shopId": SHOP_ID,
                "multiWarehouse": True,
                "credentialsSecretRef": {"name": "c"},
                "rateLimit": {"requestsPerSecond": rps, "burst": max(1, int(rps // 10))},
            },
        }
    )
    return build_channel(store, SECRET, retry=RetryPolicy(attempts=8))


ROWS: list[list[str]] = []


async def step(sb: Sandbox, name: str, work: Any, bound_rps: float | None = None) -> Any:
    sb.state.reset_counts()
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    counts = sb.state.counts()
    total, writes = counts["total"], counts["writes"]["requests"]
    bound = f"{total / bound_rps:.1f} s" if bound_rps else "-"
    print(
        f"{name:<44} {elapsed:7.2f} s  requests {total:>6}  writes {writes:>5}  bound {bound}",
        file=sys.stderr,
    )
    ROWS.append([name, f"{elapsed:.2f} s", str(total), str(writes), bound])
    return result


async def main(items: int, pushes: int, rps: float) -> None:
    async with run_sandbox(config(items)) as sb:
        fast = channel(sb, 10_000)
        listings = await step(sb, f"full read, {items + 1:,} items (no rate limit)", fast.list_listings())
        assert len(listings) == (items * 2 + WIDE_MODELS) * len(LOCATIONS)
        await fast.aclose()

        limited = channel(sb, rps)
        small = min(items, 1_000)
        # a SKU read of `small` items, at the rate limit: one base-info call per 50 items, one model list each
        skus = {f"SKU-{k:07d}" for k in range(small * 2)}
        read = await step(
            sb, f"read of {small * 2:,} SKUs on {small:,} items @{rps:g}/s", limited.list_listings(skus), rps
        )
        assert len(read) == small * 2 * len(LOCATIONS)

        async def push_spread() -> int:
            batches = [
                [SlotUpdate(str(900_000_000 + n), str(800_000_000 + 2 * n), loc, 3) for loc in LOCATIONS]
                for n in range(pushes)
            ]
            results = await asyncio.gather(*(limited.push(b[0].product_id, b) for b in batches))
            return sum(o.ok for r in results for o in r)

        ok = await step(
            sb, f"push {pushes:,} changed models on {pushes:,} items @{rps:g}/s", push_spread(), rps
        )
        assert ok == pushes * len(LOCATIONS)
        wide = [SlotUpdate(str(WIDE_ITEM), str(1 + k), "IDZ", 4) for k in range(WIDE_MODELS)]
        outcomes = await step(
            sb, f"push {WIDE_MODELS} changed models of one item", limited.push(str(WIDE_ITEM), wide), rps
        )
        assert sum(o.ok for o in outcomes) == WIDE_MODELS and sb.state.writes["requests"] == math.ceil(
            WIDE_MODELS / sp.MODELS_PER_UPDATE
        )
        await limited.aclose()


def read_requests(items: int) -> int:
    """Requests of a full read of a shop whose items all have models."""
    return math.ceil(items / sp.PAGE_SIZE) + math.ceil(items / sp.BASE_INFO_ITEMS_MAX) + items


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--pushes", type=int, default=500)
    parser.add_argument("--rps", type=float, default=100)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    asyncio.run(main(args.items, args.pushes, args.rps))
    per_item = read_requests(args.items + 1) / (args.items + 1)
    bounds = ", ".join(
        f"{n:,} items: {read_requests(n) / r / 60:.1f} min at {r:g}/s"
        for n, r in ((10_000, 10), (10_000, 50), (100_000, 50))
    )
    per_model = 1 / sp.MODELS_PER_UPDATE
    emit(
        f"### Shopee: the real client against the sandbox over loopback HTTP\n\nMachine: {host}. One run."
        f" A full read costs {per_item:.2f} requests per item (one model list each, plus list pages and"
        f" base info 50 at a time); Shopee publishes no rate limit, so a sync's time is the Store's"
        f" rateLimit bound: {bounds}. Writes: one update_stock call per changed item, {per_model:.2f} calls"
        " per model when one item changes many (50 models a call). Convergence after a change of C items"
        " (webhook-triggered, known SKUs): (ceil(C/50) + 2C) / rate seconds (base info, model lists,"
        " writes).\n\n" + table(["step", "time", "requests", "writes", "rate bound"], ROWS),
        args.markdown,
    )
