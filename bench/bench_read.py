"""CPU of one full read + plan, against the floor of just JSON-decoding the same pages.

The sandbox runs in its own process (its CPU is not counted); this process does what a full sync of
one rule does: read every TikTok shop (products search pages) and the ERP source with the real
clients, concurrently, keep the read as the operator does between syncs (ReadState), plan the
engine's world built from it and sum the plan up (RuleTally, what the status reports). Every
response body is kept as it arrives; the floor is the CPU of decoding those same bodies with orjson,
with the standard library's json shown too.
Target: read + plan CPU / floor <= 5, and about 10 us per listing.
Usage: .venv/bin/python bench/bench_read.py [--listings 30000 100000 1000000] [--shop-size 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import yaml
from yarl import URL

from invsync.api import InventorySource, Store, SyncRule, Warehouse
from invsync.engine import compute_plan
from invsync.engine.tally import RuleTally
from invsync.operator.observe import engine_world
from invsync.operator.state import ReadState, Snapshot
from invsync.providers import RetryPolicy, build_channel, build_source
from invsync.providers.client import HttpClient, Request, Response
from report import emit, log, machine, table

APP = {"app_key": "bench-key", "app_secret": "bench-secret"}
API = {"apiVersion": "invsync.dev/v1alpha1"}
TIKTOK_PAGE = 100  # products per search page: the bound is every product read once


def sandbox_config(shops: int, products: int) -> dict[str, Any]:
    return {
        "tiktok": APP
        | {
            "requestsPerSecond": 100_000,
            "shops": [
                {
                    "cipher": f"ROW_read{s}",
                    "access_token": f"token-{s}",
                    "warehouses": [{"id": "7000", "is_default": True}],
                    "generate": {"products": products, "quantity": 7},
                }
                for s in range(shops)
            ],
        },
        "erp": [{"name": "wms", "generate": {"items": products, "available": 7, "locations": ["L1"]}}],
    }


@contextmanager
def sandbox(config: dict[str, Any]) -> Iterator[str]:
    """`invsync sandbox` in its own process; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = Path(tempfile.mkdtemp(prefix="invsync-bench-read-")) / "sandbox.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "invsync.sandbox", "--config", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                httpx.get(f"{url}/_sandbox/requests", timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def objects(url: str, shops: int) -> tuple[list[Store], InventorySource, Warehouse, SyncRule]:
    stores = [
        Store.model_validate(
            API
            | {
                "kind": "Store",
                "metadata": {"name": f"store-{s}"},
                "spec": {
                    "platform": "tiktok",
                    "endpoint": url,
                    "shopCipher": f"ROW_read{s}",
                    "credentialsSecretRef": {"name": f"tiktok-{s}"},
                    "rateLimit": {"requestsPerSecond": 10_000, "burst": 1000},
                },
            }
        )
        for s in range(shops)
    ]
    source = InventorySource.model_validate(
        API
        | {
            "kind": "InventorySource",
            "metadata": {"name": "wms"},
            "spec": {"provider": "http", "endpoint": f"{url}/erp/wms", "credentialsSecretRef": {"name": "c"}},
        }
    )
    warehouse = Warehouse.model_validate(
        API
        | {
            "kind": "Warehouse",
            "metadata": {"name": "w1"},
            "spec": {"sourceRef": {"name": "wms"}, "locationId": "L1"},
        }
    )
    rule = SyncRule.model_validate(
        API
        | {
            "kind": "SyncRule",
            "metadata": {"name": "rule"},
            "spec": {
                "stores": {"names": [s.name for s in stores]},
                "warehouses": [{"name": "w1", "ratio": 100}],
            },
        }
    )
    return stores, source, warehouse, rule


BODIES: list[bytes] = []
REQUESTS: list[Request] = []
SEARCHES: list[int] = []  # one per TikTok products-search page


def keep_bodies() -> None:
    """Keep every request the clients send and every response body they receive (the floors)."""
    send = HttpClient.send

    async def keeping(self: HttpClient, request: Request, **kw: Any) -> Response:
        response = await send(self, request, **kw)
        REQUESTS.append(request)
        BODIES.append(response.content)
        if request.path.endswith("/products/search"):
            SEARCHES.append(1)
        return response

    HttpClient.send = keeping  # type: ignore[method-assign]


async def full_sync(url: str, shops: int) -> tuple[float, float, int, int]:
    """(read CPU, plan CPU, listings, pages) of one full read + plan of the rule."""
    stores, source, warehouse, rule = objects(url, shops)
    retry = RetryPolicy(attempts=8)
    cpu0 = time.process_time()
    channels = [
        build_channel(s, APP | {"access_token": f"token-{i}"}, retry=retry) for i, s in enumerate(stores)
    ]
    erp = build_source(source, None, retry=retry)
    reads = await asyncio.gather(erp.read_stock(["L1"]), *(c.list_listings() for c in channels))
    await asyncio.gather(erp.aclose(), *(c.aclose() for c in channels))
    stock, listings = reads[0], [x for read in reads[1:] for x in read]
    cpu1 = time.process_time()
    # as read_world keeps the read between syncs, and as the operator plans from it
    state = ReadState.of(stock, listings, read_stores=frozenset(s.name for s in stores))
    snap = Snapshot("default", [rule], {s.name: s for s in stores}, {"w1": warehouse}, {"wms": source})
    plan = compute_plan(engine_world(snap, state))
    tally = RuleTally.of(plan.rules["rule"], plan.rules)
    cpu2 = time.process_time()
    assert sum(c.in_sync for c in tally.counts(()).values()) == len(listings)
    return cpu1 - cpu0, cpu2 - cpu1, len(listings), len(BODIES)


def floor(decode: Any) -> float:
    cpu = time.process_time()
    for body in BODIES:
        decode(body)
    return time.process_time() - cpu


async def transfer_floor(concurrency: int) -> float:
    """CPU of sending the same requests again (signed and encoded already) through a bare aiohttp
    session and decoding each answer with orjson: what any client in this process pays for the pages
    before it builds a slot or plans one (the sandbox accepts the replay: same timestamps, seconds
    later)."""
    pending = iter(REQUESTS)
    async with aiohttp.ClientSession() as session:

        async def replay() -> None:
            for r in pending:
                async with session.request(
                    r.method, URL(r.url, encoded=True), headers=r.headers, data=r.content
                ) as answer:
                    assert answer.status == 200, f"the replay of {r.path} was refused ({answer.status})"
                    orjson.loads(await answer.read())

        cpu = time.process_time()
        await asyncio.gather(*(replay() for _ in range(concurrency)))
        return time.process_time() - cpu


def measure(listings: int, shop_size: int) -> list[str]:
    shops = max(1, listings // shop_size)
    products = listings // shops
    BODIES.clear()
    REQUESTS.clear()
    SEARCHES.clear()
    with sandbox(sandbox_config(shops, products)) as url:
        log(f"{listings:,} listings: {shops} shop(s) x {products:,} products, sandbox up")
        gc.collect()
        read, plan, n, pages = asyncio.run(full_sync(url, shops))
        transfer = asyncio.run(transfer_floor(shops + 1))  # the shops and the ERP source at once
    fast, std = floor(orjson.loads), floor(json.loads)
    total = read + plan
    log(
        f"read {read:.2f} s, plan {plan:.2f} s, floor {fast:.2f} s (json {std:.2f} s), "
        f"HTTP + decode {transfer:.2f} s, {pages} responses"
    )
    bound = shops * math.ceil(products / TIKTOK_PAGE)
    return [
        f"{n:,} ({shops} x {products:,})",
        f"{len(SEARCHES):,} / {bound:,} = **{len(SEARCHES) / bound:.3f}** ({pages:,})",
        f"{read:.2f} s",
        f"{plan:.2f} s",
        f"{fast:.2f} s ({std:.2f} s)",
        f"**{total / fast:.1f}** ({total / std:.1f})",
        f"{transfer:.2f} s = {transfer / fast:.1f} x floor",
        f"{total / n * 1e6:.1f} us",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, nargs="+", default=[30_000, 100_000, 1_000_000])
    parser.add_argument("--shop-size", type=int, default=100_000, help="products per shop (more: more shops)")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    keep_bodies()
    rows = [measure(n, args.shop_size) for n in args.listings]
    emit(
        "### Full read + plan CPU against the decode floor\n\n"
        f"Machine: {host}. One run per size, pid {os.getpid()}; the sandbox in its own process. Read: every"
        " products-search page of every shop and every ERP page, through the real clients; plan:"
        " the read kept as the operator keeps it (ReadState), compute_plan and RuleTally of one rule over"
        " all of it. Floor: orjson.loads of the same response"
        " bodies (stdlib json.loads in brackets). HTTP + decode: the same requests sent again through a"
        " bare aiohttp session, each answer read and decoded, nothing else: what receiving the pages"
        " costs this process before a slot is built. Target: ratio <= 5, about 10 us per listing."
        " Search pages / bound:"
        " products-search pages read against products / 100 per shop (shops past 10,000 products are"
        " read in create_time windows).\n\n"
        + table(
            [
                "listings (shops x products)",
                "search pages / bound (all responses)",
                "read CPU",
                "plan CPU",
                "decode floor orjson (json)",
                "(read + plan) / floor",
                "HTTP + decode (bare aiohttp, same requests)",
                "CPU per listing",
            ],
            rows,
        ),
        args.markdown,
    )


if __name__ == "__main__":
    main()
