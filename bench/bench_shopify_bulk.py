"""A large Shopify source read in full by one bulk query operation, against its bound and against paging.

The real client (providers/shopify.py) reads every level of a 200,000-level shop over loopback HTTP:
once by bulk operation (the threshold picks it), once page by page. The bulk read's bound is what
Shopify's side takes in the same run: the operation's generation time (createdAt to completion in the
sandbox, at its configured objects/s) plus one plain download of the same file (no parsing). Cost
points are the sandbox's charge of every query (actual cost), for each read. The cost bucket is set far
above any plan so the paged read measures points, not waiting (at a standard plan's 100 points/s it
would wait ~2 hours).
Usage: .venv/bin/python bench/bench_shopify_bulk.py [--levels N] [--objects-per-second R] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from invsync.engine.records import StockRecord
from invsync.providers import RetryPolicy
from invsync.providers.shopify import ShopifySource
from invsync.sandbox.server import Sandbox, run_sandbox
from report import emit, log, machine, table

LOCATION = "gid://shopify/Location/1"
TOKEN = "shpat_bench"


def config(levels: int, rate: float) -> dict[str, Any]:
    return {
        "shopify": [
            {
                "shop": "bench",
                "access_token": TOKEN,
                "locations": [{"id": LOCATION, "name": "JKT"}],
                "throttle": {"maximumAvailable": 10_000_000, "restoreRate": 10_000_000},
                "generate": {"items": levels, "available": 5},
                "bulk": {"objectsPerSecond": rate},
            }
        ]
    }


def source(sb: Sandbox, bulk_threshold: int) -> ShopifySource:
    return ShopifySource(
        name="bench",
        endpoint=f"{sb.url}/shopify/bench",
        access_token=TOKEN,
        retry=RetryPolicy(attempts=8),
        bulk_threshold=bulk_threshold,
    )


async def timed_read(sb: Sandbox, bulk_threshold: int) -> tuple[list[StockRecord], float, float, int]:
    """Records, start and end (unix time, as the sandbox stamps operations) and cost points of one
    full read."""
    shop = sb.state.shopify["bench"]
    shop.points = 0
    client = source(sb, bulk_threshold)
    started = time.time()
    records = await client.read_stock([LOCATION])
    ended = time.time()
    await client.aclose()
    return records, started, ended, shop.points


async def plain_download(sb: Sandbox) -> tuple[float, int]:
    """Seconds and bytes of one download of the last operation's file, body discarded."""
    operation = max(sb.state.shopify["bench"].bulk_operations.values(), key=lambda o: o.number)
    url = f"{sb.url}/shopify-bulk/bench/{operation.number}.jsonl?expires=0&signature={operation.signature}"
    size = 0
    async with httpx.AsyncClient(timeout=60) as client:
        started = time.perf_counter()
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                size += len(chunk)
        return time.perf_counter() - started, size


async def main(levels: int, rate: float) -> list[list[str]]:
    async with run_sandbox(config(levels, rate)) as sb:
        records, started, ended, bulk_points = await timed_read(sb, bulk_threshold=1)
        bulk_time = ended - started
        assert len(records) == levels
        operation = max(sb.state.shopify["bench"].bulk_operations.values(), key=lambda o: o.number)
        assert operation.completed is not None and operation.status == "COMPLETED"
        generation = operation.completed - operation.created
        download, size = await plain_download(sb)
        log(f"bulk read {bulk_time:.2f} s, generation {generation:.2f} s, download {download:.2f} s")
        paged, paged_start, paged_end, paged_points = await timed_read(sb, bulk_threshold=10**12)
        paged_time = paged_end - paged_start
        log(f"paged read {paged_time:.2f} s, {paged_points} points")
        key = lambda r: r.sku  # noqa: E731
        assert sorted(paged, key=key) == sorted(records, key=key), "the bulk read differs from the paged read"
    bound = generation + download
    return [
        ["levels read", f"{levels:,}", f"{levels:,}"],
        ["file", f"{size / 2**20:.1f} MiB JSONL, {operation.object_count:,} objects", "-"],
        ["time", f"{bulk_time:.2f} s", f"{paged_time:.2f} s (bucket unlimited)"],
        ["bound: generation + download", f"{generation:.2f} s + {download:.2f} s = {bound:.2f} s", "-"],
        ["time / bound", f"{bulk_time / bound:.3f}", "-"],
        ["of which before the operation (count, mutation)", f"{operation.created - started:.2f} s", "-"],
        ["of which after it (last poll, download, decode)", f"{ended - operation.completed:.2f} s", "-"],
        ["cost points", f"{bulk_points:,}", f"{paged_points:,}"],
        ["points / paging", f"{bulk_points / paged_points:.3%}", "100%"],
        [
            "at 100 points/s (standard plan)",
            f"{max(0.0, bulk_points - 2000) / 100:.1f} s of waiting",
            f"{max(0.0, paged_points - 2000) / 100 / 60:.0f} min of waiting",
        ],
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=200_000)
    parser.add_argument(
        "--objects-per-second",
        type=float,
        default=10_000,
        help="the sandbox's bulk generation rate (Shopify publishes none)",
    )
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    rows = asyncio.run(main(args.levels, args.objects_per_second))
    emit(
        f"### Shopify full read by bulk operation vs paging\n\nMachine: {host}. One run, one location,"
        f" the sandbox generating {args.objects_per_second:,.0f} objects/s.\n\n"
        + table(["", "bulk operation", "paged (200 levels a page)"], rows),
        args.markdown,
    )
