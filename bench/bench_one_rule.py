"""One rule over a 100,000-product TikTok shop fed by a 200,000-level Shopify source: `invsync run` on a
real control plane converges it, reading the shop page by page at its rate limit and the source by
one bulk operation (providers/shopify.py), then pushing the changed products.

The bound is what the platforms alone take: the slower of the two reads (TikTok: one products-search
page per 100 products at the Store's rate; Shopify: the bulk operation's generation time in the sandbox
plus one plain download of its file, measured after the run), then one inventory update per changed
product at the rate. The clock starts when the SyncRule is applied to a running operator and stops
when every slot of the shop equals the sum of its SKU's two Shopify levels. Target (issue 15):
wall / bound <= 1.2; Shopify cost points of the full read <= 1% of paging it (200 levels a page).
Usage: .venv/bin/python bench/bench_one_rule.py [--products 100000] [--changed 500] [--rps 50]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from pathlib import Path
from typing import Any

import httpx

from harness import (
    APP,
    TIKTOK_PAGE,
    Operator,
    control_plane,
    process_usage,
    resource,
    running,
    secret,
    tiktok_calls,
    wait_for,
)
from invsync.sandbox.server import Sandbox
from report import emit, log, machine, table

SHOP, CIPHER, TOKEN = "big", "ROW_big", "shpat_bench"
LOCATIONS = ("gid://shopify/Location/1", "gid://shopify/Location/2")
CHANNEL_WAREHOUSE = "7000"
AVAILABLE = 5  # at each location: every slot's target is 2 x 5
SHOPIFY_PAGE = 200  # levels per page of a paged read
PAGE_COST = 803  # a 200-level page's actual cost (docs/platforms.md, Shopify "Query cost")


class OneRule:
    """The world of `harness.running`: its sandbox config and manifests (not the rule)."""

    def __init__(self, products: int, rps: float, burst: int) -> None:
        self.products, self.rps, self.burst = products, rps, burst

    def sandbox_config(self, op: Operator) -> dict[str, Any]:
        return {
            "tiktok": APP
            | {
                "requestsPerSecond": self.rps,
                "shops": [
                    {
                        "cipher": CIPHER,
                        "access_token": "token-big",
                        "warehouses": [{"id": CHANNEL_WAREHOUSE, "is_default": True}],
                        "generate": {"products": self.products, "quantity": 2 * AVAILABLE},
                    }
                ],
            },
            "shopify": [
                {
                    "shop": SHOP,
                    "access_token": TOKEN,
                    "locations": [{"id": loc, "name": f"L{n}"} for n, loc in enumerate(LOCATIONS, 1)],
                    "generate": {"items": self.products, "available": AVAILABLE},
                }
            ],
        }

    def manifests(self, url: str) -> list[dict[str, Any]]:
        return [
            secret("shopify-creds", {"access_token": TOKEN}),
            resource(
                "InventorySource",
                "shopify",
                {
                    "provider": "shopify",
                    "endpoint": f"{url}/shopify/{SHOP}",
                    "credentialsSecretRef": {"name": "shopify-creds"},
                },
            ),
            *(
                resource("Warehouse", f"w{n}", {"sourceRef": {"name": "shopify"}, "locationId": loc})
                for n, loc in enumerate(LOCATIONS, 1)
            ),
            secret("tiktok-big", APP | {"access_token": "token-big"}),
            resource(
                "Store",
                "big",
                {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": CIPHER,
                    "credentialsSecretRef": {"name": "tiktok-big"},
                    "rateLimit": {"requestsPerSecond": self.rps, "burst": self.burst},
                },
            ),
        ]


def rule() -> dict[str, Any]:
    return resource(
        "SyncRule",
        "one-rule",
        {"stores": {"names": ["big"]}, "interval": "1h",
         "warehouses": [{"name": f"w{n}", "ratio": 100} for n in range(1, len(LOCATIONS) + 1)]},
    )  # fmt: skip


def change_listings(sb: Sandbox, changed: int) -> None:
    """The first ``changed`` SKUs listed at 0: the products the run must push."""
    skus = list(sb.state.tiktok[CIPHER].skus.values())
    for sku in skus[:changed]:
        sku.inventory[CHANNEL_WAREHOUSE] = 0


def mismatched(sb: Sandbox) -> int:
    levels = sb.state.shopify[SHOP]
    want = {item.sku: sum(item.levels.values()) for item in levels.items.values()}
    return sum(
        1
        for sku in list(sb.state.tiktok[CIPHER].skus.values())
        if sku.inventory[CHANNEL_WAREHOUSE] != want.get(sku.seller_sku)
    )


async def plain_download(sb: Sandbox) -> float:
    """Seconds of one download of the last bulk operation's file, body discarded."""
    operation = max(sb.state.shopify[SHOP].bulk_operations.values(), key=lambda o: o.number)
    url = f"{sb.url}/shopify-bulk/{SHOP}/{operation.number}.jsonl?expires=0&signature={operation.signature}"
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        async with client.stream("GET", url) as response:
            response.raise_for_status()
            async for _ in response.aiter_raw():
                pass
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000, help="TikTok products = Shopify items")
    parser.add_argument("--changed", type=int, default=500, help="products listed wrong at the start")
    parser.add_argument("--rps", type=float, default=50, help="the shop's and the Store's requests/s")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    world = OneRule(args.products, args.rps, args.burst)
    with control_plane() as plane, running(plane, world, "one") as env:
        sb = env.sandbox
        change_listings(sb, args.changed)
        assert mismatched(sb) == args.changed
        sb.state.reset_counts()
        sb.state.shopify[SHOP].points = 0
        started = time.perf_counter()
        env.apply([rule()])
        wait_for(lambda: mismatched(sb) == 0, what="every slot to match", timeout=1800)
        wall = time.perf_counter() - started
        counts = sb.state.counts()
        writes = tiktok_calls(sb, "inventory_update")
        operations = list(sb.state.shopify[SHOP].bulk_operations.values())
        assert len(operations) == 1 and operations[0].completed is not None, operations
        generation = operations[0].completed - operations[0].created
        download = asyncio.run(plain_download(sb))
        points = sb.state.shopify[SHOP].points
        assert env.operator.proc is not None
        cpu, _, peak = process_usage(env.operator.proc.pid)
    pages = math.ceil(args.products / TIKTOK_PAGE)
    tiktok_bound, shopify_bound = pages / args.rps, generation + download
    push_bound = args.changed / args.rps
    bound = max(tiktok_bound, shopify_bound) + push_bound
    levels = args.products * len(LOCATIONS)
    paged_points = math.ceil(levels / SHOPIFY_PAGE) * PAGE_COST
    log(f"wall {wall:.1f} s, bound {bound:.1f} s, writes {writes}, counts {counts['readPages']}")
    rows = [
        ["wall time until every slot matches", f"{wall:.1f} s", f"{bound:.1f} s", "",
         f"max(TikTok {tiktok_bound:.1f} s, Shopify {generation:.1f} s + {download:.1f} s) + pushes"
         f" {push_bound:.1f} s"],
        ["wall / bound", f"**{wall / bound:.3f}**", "1.000", "<= 1.2", ""],
        ["TikTok products-search pages", f"{counts['readPages'].get('tiktok', 0):,}", f"{pages:,}", "",
         "create_time windows past 10,000 results"],
        ["inventory update calls / changed products",
         f"{sum(writes.values())} / {args.changed} = **{sum(writes.values()) / args.changed:.2f}**", "1.00",
         "1.00", f"{writes.get('429', 0)} x 429"],
        ["Shopify bulk operations / cost points", f"{len(operations)} / {points:,}", "", "",
         f"paging: {paged_points:,} points"],
        ["Shopify points / paging", f"**{points / paged_points:.4%}**", "", "<= 1%", ""],
        ["operator CPU, peak RSS", f"{cpu:.1f} s, {peak:,.0f} MiB", "", "", "from its start"],
    ]  # fmt: skip
    emit(
        f"### One rule: a {args.products:,}-product TikTok shop fed by a {levels:,}-level Shopify source\n\n"
        f"Machine: {host}. One run: {args.changed:,} products listed wrong at the start, {args.rps:g}"
        f" requests/s (Store burst {args.burst}); Shopify read by bulk operation.\n\n"
        + table(["figure", "measured", "bound", "target", "notes"], rows),
        args.markdown,
    )


if __name__ == "__main__":
    main()
