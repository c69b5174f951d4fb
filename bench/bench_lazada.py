"""A Lazada seller at its rate limit: the real client against the sandbox over loopback HTTP.

One multi-warehouse seller (dropshipping and a second warehouse) of `--products` products with
`--skus` SKUs each, limited by the sandbox to `--rps` calls per second (Lazada: 50 inventory calls per
second per seller) with the Store's rateLimit at the same rate. Steps: a full read (GetProducts, 50
products per page), then two pushes through the operator's act step (the engine's per-product batches at the
operator's push concurrency; the client puts up to 20 SKUs of waiting pushes in one
UpdateSellableQuantity request): `--changes` SKUs changed in as few products as possible,
then the same number each in its own product. Prints time, requests, 901 answers and writes per
changed SKU, and the rate-limit bound of each step (calls / rps).
Usage: .venv/bin/python bench/bench_lazada.py [--products N] [--skus N] [--changes N] [--rps R]
       [--markdown FILE]
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
from invsync.engine.records import Listing, PlanRow
from invsync.operator.act import push_concurrency, push_rows
from invsync.providers import RetryPolicy, build_channel
from invsync.providers import lazada as lz
from invsync.sandbox.lazada_state import GENERATED_SKU_ID
from invsync.sandbox.server import Sandbox, run_sandbox
from report import emit, machine, table

APP = {"app_key": "300999", "app_secret": "bench-lazada-secret"}
TOKEN = "bench-lazada-access"
WH2 = "BENCH-WH-2"
ROWS: list[list[str]] = []


def config(products: int, skus: int, rps: float) -> dict[str, Any]:
    seller = {
        "seller_id": "bench",
        "access_token": TOKEN,
        "warehouses": [lz.DROPSHIPPING, WH2],
        "requestsPerSecond": rps,
        "generate": {"products": products, "skusPerProduct": skus, "quantity": 5},
    }
    return {"lazada": APP | {"sellers": [seller]}}


def store(sb: Sandbox, rps: float) -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": "bench"},
            "spec": {
                "platform": "lazada",
                "endpoint": f"{sb.url}/lazada/rest",
                "credentialsSecretRef": {"name": "c"},
                "multiWarehouse": True,
                "rateLimit": {"requestsPerSecond": rps, "burst": 10},
            },
        }
    )


async def step(sb: Sandbox, name: str, rps: float, changed: int, work: Any) -> Any:
    sb.state.reset_counts()
    sb.state.lazada.log.clear()
    started = time.perf_counter()
    result = await work
    elapsed = time.perf_counter() - started
    log = sb.state.lazada.log
    calls = len(log)
    limited = sum(r["code"] == lz.CODE_RATE_LIMITED for r in log)
    writes = sb.state.writes["requests"]
    accepted = calls - limited
    per_sku = f"{writes / changed:.2f}" if changed else "-"
    print(
        f"{name:<44} {elapsed:7.2f} s  calls {calls:>6}  901 {limited:>4}  writes {writes:>5}",
        file=sys.stderr,
    )
    ROWS.append(
        [name, f"{elapsed:.2f} s", f"{accepted / rps:.2f} s", str(calls), str(limited), str(writes), per_sku]
    )
    return result


def rows_for(listings: list[Listing], skus: list[int]) -> list[PlanRow]:
    """One changed slot (dropshipping, +1) for each of these SKU numbers."""
    by_sku = {x.sku_id: x for x in listings if x.channel_warehouse_id == lz.DROPSHIPPING}
    return [
        PlanRow(
            "bench",
            "bench",
            x.channel_warehouse_id,
            x.sku,
            x.product_id,
            x.sku_id,
            x.quantity,
            x.quantity + 1,
            "ratio",
        )
        for x in (by_sku[str(GENERATED_SKU_ID + k)] for k in skus)
    ]


async def main(products: int, skus: int, changes: int, rps: float) -> None:
    async with run_sandbox(config(products, skus, rps)) as sb:
        the_store = store(sb, rps)
        channel = build_channel(
            the_store, APP | {"access_token": TOKEN}, retry=RetryPolicy(attempts=10, timeout=30)
        )
        listings: list[Listing] = await step(
            sb, f"read {products:,} products x {skus} SKUs x 2 warehouses", rps, 0, channel.list_listings()
        )
        assert len(listings) == products * skus * 2

        async def push(rows: list[PlanRow]) -> int:
            outcomes, _ = await push_rows(
                rows,
                "DecreasesFirst",
                {"bench": channel},
                _progress,
                listings=listings,
                concurrency={"bench": push_concurrency(the_store)},
            )
            return sum(o.ok for o in outcomes.values())

        packed = list(range(changes))  # whole products: skus changed SKUs per request
        spread = [p * skus for p in range(min(changes, products))]  # one SKU in each of `changes` products
        ok = await step(sb, f"push {changes:,} SKUs in {math.ceil(changes / skus):,} products", rps, changes,
                        push(rows_for(listings, packed)))  # fmt: skip
        assert ok == changes
        ok = await step(sb, f"push {len(spread):,} SKUs in {len(spread):,} products", rps, len(spread),
                        push(rows_for(listings, spread)))  # fmt: skip
        assert ok == len(spread)
        await channel.aclose()


async def _progress(done: int, total: int) -> None:
    return None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--skus", type=int, default=4, help="SKUs per product (at most 20 fit one request)")
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--rps", type=float, default=50)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    asyncio.run(main(args.products, args.skus, args.changes, args.rps))
    emit(
        f"### A Lazada seller at {args.rps:g} calls/s (the sandbox's limit and the Store's rateLimit)\n\n"
        f"Machine: {host}. One run. The bound is the accepted calls / {args.rps:g} per second (a read is one"
        " GetMultiWarehouseBySeller call and one GetProducts call per 50 products); 901 answers were retried"
        " in the next second. Writes per changed SKU: UpdateSellableQuantity requests / changed SKUs (the"
        " operator pushes product by product, several at once; the client sends up to 20 SKUs of waiting"
        " pushes per request).\n\n"
        + table(
            ["step", "time", "rate-limit bound", "calls", "901", "writes", "writes per changed SKU"], ROWS
        ),
        args.markdown,
    )
