"""Memory a rule keeps per listing between syncs: its last full read (ReadState: slots, stock, the SKU
index) and its plan's tally, built from decoded pages the way a full sync builds them.

TikTok products-search pages and ERP pages are generated as the sandbox serves them, decoded with
the clients' decoders and turned into Listings and StockRecords by the clients' own code; the bytes
are tracemalloc's count of what stays allocated once the pages are gone. Also the process RSS after
each size (the interpreter and the libraries included). Target: <= 400 bytes per listing held.
Usage: .venv/bin/python bench/bench_memory.py [--listings 100000 1000000] [--shop-size 10000]
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import orjson

from bench_read import objects
from invsync.api import Store
from invsync.engine import compute_plan
from invsync.engine.records import Listing, StockRecord
from invsync.engine.tally import RuleTally
from invsync.operator.state import ReadState
from invsync.providers.http_source import _plain_page
from invsync.providers.tiktok import _ENVELOPE, _SEARCH_PAGE, TikTokChannel
from report import emit, log, machine, table

PAGE = 100


def _page(shop: int, start: int, count: int) -> bytes:
    """One products-search page as the sandbox's generated shop serves it (docs/platforms.md)."""
    products = [
        {
            "id": f"17{shop:04d}{p:013d}",
            "status": "ACTIVATE",
            "skus": [
                {
                    "id": f"18{shop:04d}{p:013d}",
                    "seller_sku": f"SKU-{p:07d}",
                    "inventory": [{"warehouse_id": "7000", "quantity": 7}],
                }
            ],
        }
        for p in range(start, start + count)
    ]
    return orjson.dumps({"code": 0, "data": {"products": products, "next_page_token": "x"}})


def _erp_page(start: int, count: int) -> bytes:
    items = [{"sku": f"SKU-{i:07d}", "location": "L1", "available": 7} for i in range(start, start + count)]
    return orjson.dumps({"items": items, "nextCursor": "x"})


def decoded(shops: int, products: int) -> tuple[list[StockRecord], list[Listing], list[Store]]:
    """What read_world gathers for `shops` shops listing the same `products` SKUs, from decoded pages."""
    stores, *_ = objects("http://127.0.0.1:1", shops)
    listings: list[Listing] = []
    for s, store in enumerate(stores):
        channel = TikTokChannel.__new__(TikTokChannel)
        channel.store = store.name
        for start in range(0, products, PAGE):
            envelope = _ENVELOPE.decode(_page(s, start, min(PAGE, products - start)))
            page = _SEARCH_PAGE.decode(envelope.data)
            assert page is not None
            for product in page.products:
                listings += channel._slots(product)
    stock: list[StockRecord] = []
    for start in range(0, products, 500):
        records, _ = _plain_page("wms", _erp_page(start, min(500, products - start))) or ([], None)
        stock += records
    return stock, listings, stores


def kept(stock: list[StockRecord], listings: list[Listing], stores: list[Store]) -> ReadState:
    """The read as read_world keeps it between syncs."""
    return ReadState.of(stock, listings, read_stores=frozenset(s.name for s in stores))


def cpu(step: Callable[[], object]) -> float:
    """The least CPU seconds of three runs of `step` (its result dropped before the next)."""
    best = math.inf
    for _ in range(3):
        gc.collect()
        started = time.process_time()
        step()
        best = min(best, time.process_time() - started)
    return best


def measure(listings: int, shop_size: int) -> list[str]:
    shops = max(1, listings // shop_size)
    products = listings // shops
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    stock, slots, stores = decoded(shops, products)
    state = kept(stock, slots, stores)
    del stock, slots
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    from invsync.operator.observe import engine_world
    from invsync.operator.state import Snapshot

    stores, source, warehouse, rule = objects("http://127.0.0.1:1", shops)
    snap = Snapshot("default", [rule], {s.name: s for s in stores}, {"w1": warehouse}, {"wms": source})

    def plan_and_tally() -> RuleTally:
        plan = compute_plan(engine_world(snap, state))
        return RuleTally.of(plan.rules["rule"], plan.rules)

    tracemalloc.start()
    tally = plan_and_tally()
    kept_bytes, transient = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    gc.collect()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(state.all_slots())
    assert tally.counts(())
    stock, slots = state.all_stock(), sorted(state.all_slots(), key=lambda x: x.store)  # read order
    keep_cpu = cpu(lambda: kept(stock, slots, stores))
    plan_cpu = cpu(plan_and_tally)
    log(
        f"{n:,} listings: read state {held / n:.0f} B/listing, tally {kept_bytes} B, peak RSS {rss:.0f} MiB,"
        f" ReadState.of {keep_cpu / n * 1e6:.2f} us, plan + tally {plan_cpu / n * 1e6:.2f} us per listing"
    )
    return [
        f"{n:,} ({shops} x {products:,})",
        f"{len(stock):,}",
        f"{held / 2**20:.0f} MiB",
        f"**{held / n:.0f} B**",
        f"{kept_bytes / 2**10:.1f} KiB",
        f"{transient / n:.0f} B",
        f"{rss:.0f} MiB",
        f"{keep_cpu / n * 1e6:.2f} us",
        f"{plan_cpu / n * 1e6:.2f} us",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--shop-size", type=int, default=10_000, help="products per shop")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    host = machine()
    rows = [measure(n, args.shop_size) for n in args.listings]
    emit(
        "### Memory kept per listing between syncs\n\n"
        f"Machine: {host}. One rule's last full read (slots, stock, the per-SKU index) built from decoded"
        " pages by the clients' own code, and its plan's tally; tracemalloc's bytes still allocated, and"
        " the peak while a full plan runs."
        " Every shop lists the same SKUs (one ERP record per SKU), so stock is shared across shops."
        " Peak RSS: this whole process (interpreter, libraries, the transient plan). Target <= 400 B."
        " CPU: the least of three runs, without tracemalloc.\n\n"
        + table(
            [
                "listings (shops x products)",
                "stock records",
                "read kept",
                "per listing",
                "tally",
                "full plan's peak, per listing (transient)",
                "peak RSS",
                "CPU per listing: keeping the read (ReadState.of)",
                "planning it (compute_plan + RuleTally)",
            ],
            rows,
        ),
        args.markdown,
    )


if __name__ == "__main__":
    main()
